-- scans.lua: POST /v1/hunts/{hunt}/scans over distinct (player, code) pairs.
-- args: hunt tokens_file payloads_file
-- Pair number g = tid + k*nthreads (k = this thread's request counter) walks every pair
-- once: player p = g % P, round r = g // P, code = (r + p) % C. Consecutive requests hit
-- different players; the walk repeats (and would get 409s) only after P*C requests, which
-- is counted in "wrapped".
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
   local hunt = args[1]
   local tokens = read_lines(args[2])
   local payloads = read_lines(args[3])
   P, C = #tokens, #payloads
   heads, bodies = {}, {}
   for i, t in ipairs(tokens) do
      heads[i] = "POST /v1/hunts/" .. hunt .. "/scans HTTP/1.1\r\nHost: " .. wrk.host ..
         "\r\nAuthorization: Bearer " .. t .. "\r\nContent-Type: application/json\r\n"
   end
   for j, p in ipairs(payloads) do
      local b = '{"code":"' .. p .. '"}'
      bodies[j] = "Content-Length: " .. #b .. "\r\n\r\n" .. b
   end
   k = 0
   wrapped = 0
   tid = tonumber(tid) or 0
end

function request()
   local g = tid + k * nthreads
   k = k + 1
   local p = g % P
   local r = math.floor(g / P)
   if r >= C then wrapped = wrapped + 1 end
   return heads[p + 1] .. bodies[(r + p) % C + 1]
end
