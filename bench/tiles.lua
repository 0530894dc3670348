-- tiles.lua: GET random tiles of a SIZE×SIZE map (65,536 requests prepared per thread
-- from a fixed seed, then round robin). args: path_prefix [suffix] [size]
-- Veltrix: /tiles/btile/ - 256 ("-": no suffix); nginx (files): /tiles/btile/ .png 256.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
request = round_robin

function init(args)
   local prefix, suffix, size = args[1], args[2] or "", tonumber(args[3] or "256")
   if suffix == "-" then suffix = "" end
   math.randomseed(4242 + (tonumber(tid) or 0))
   reqs = {}
   for i = 1, 65536 do
      local x, y = math.random(0, size - 1), math.random(0, size - 1)
      reqs[i] = wrk.format("GET", prefix .. x .. "/" .. y .. suffix)
   end
   k = 0
end
