-- get.lua: a plain GET of the URL given to wrk (healthz, leaderboard top-10).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
