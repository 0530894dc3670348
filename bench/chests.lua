-- chests.lua: POST /v1/hunts/{hunt}/zones/{zone}/open with body {}, players round-robin
-- (each thread starts at its own offset). args: hunt zone tokens_file
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
request = round_robin

function init(args)
   local path = "/v1/hunts/" .. args[1] .. "/zones/" .. args[2] .. "/open"
   reqs = {}
   for i, t in ipairs(read_lines(args[3])) do
      reqs[i] = wrk.format("POST", path, {["Authorization"] = "Bearer " .. t,
                                           ["Content-Type"] = "application/json"}, "{}")
   end
   k = tonumber(tid) or 0
end
