-- around.lua: GET /v1/hunts/{hunt}/leaderboard?around={player_id}&radius=5 over every
-- ranked player in turn. args: hunt player_ids_file
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
request = round_robin

function init(args)
   reqs = {}
   for i, id in ipairs(read_lines(args[2])) do
      reqs[i] = wrk.format("GET", "/v1/hunts/" .. args[1] .. "/leaderboard?around=" .. id ..
                           "&radius=5")
   end
   k = tonumber(tid) or 0
end
