-- players.lua: POST /v1/players (a durable write per request).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.path = "/v1/players"
wrk.body = '{"display_name":"b1"}'
wrk.headers["Content-Type"] = "application/json"
