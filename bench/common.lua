-- common.lua: shared by every bench/*.lua script (loaded with dofile).
--  * setup() gives each wrk thread its own id (global `tid`, 0-based) so a script can
--    walk its own slice of (player, code) pairs; `nthreads` comes from BENCH_THREADS.
--  * done() prints one machine-readable line "BENCHJSON {...}" that run.sh parses.
--  * With BENCH_DIAG=1, response() counts every status >= 300 and keeps a few response
--    bodies, so a run that produced errors can say which ones (costs load-gen CPU, hence
--    off by default).
threads = {}
local created = 0
nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")

function setup(thread)
   thread:set("tid", created)
   created = created + 1
   table.insert(threads, thread)
end

-- Round robin over the prepared requests in `reqs`, starting at this thread's offset
-- (`k`, set by init()). Scripts that fill `reqs` set `request = round_robin`; the others
-- define no request() at all, so that wrk sends its one static request.
function round_robin()
   k = k + 1
   return reqs[k % #reqs + 1]
end

function read_lines(path)
   local t = {}
   for line in io.lines(path) do
      if line ~= "" then t[#t + 1] = line end
   end
   if #t == 0 then error("no lines in " .. path) end
   return t
end

if os.getenv("BENCH_DIAG") == "1" then
   diag_counts = {}
   diag_samples = ""
   diag_nsamples = 0
   function response(status, headers, body)
      if status >= 300 then
         local k = tostring(status)
         diag_counts[k] = (diag_counts[k] or 0) + 1
         if diag_nsamples < 3 then
            diag_nsamples = diag_nsamples + 1
            diag_samples = diag_samples .. status .. " " .. string.sub(body or "", 1, 200) .. "\n"
         end
      end
   end
end

local function jstr(s)
   s = string.gsub(s, '[%c"\\]', function(c)
      return string.format("\\u%04x", string.byte(c))
   end)
   return '"' .. s .. '"'
end

function done(summary, latency, requests)
   local e = summary.errors
   local parts = {
      string.format('"requests":%d', summary.requests),
      string.format('"duration_us":%d', summary.duration),
      string.format('"bytes":%d', summary.bytes),
      string.format('"err_connect":%d', e.connect),
      string.format('"err_read":%d', e.read),
      string.format('"err_write":%d', e.write),
      string.format('"err_timeout":%d', e.timeout),
      string.format('"err_status":%d', e.status),
      string.format('"p50_us":%d', latency:percentile(50)),
      string.format('"p90_us":%d', latency:percentile(90)),
      string.format('"p99_us":%d', latency:percentile(99)),
      string.format('"max_us":%d', latency.max),
      string.format('"mean_us":%.1f', latency.mean),
   }
   local wrapped = 0
   local counts, samples = {}, ""
   for _, t in ipairs(threads) do
      wrapped = wrapped + (tonumber(t:get("wrapped")) or 0)
      local c = t:get("diag_counts")
      if type(c) == "table" then
         for k, v in pairs(c) do counts[k] = (counts[k] or 0) + v end
      end
      samples = samples .. (t:get("diag_samples") or "")
   end
   parts[#parts + 1] = string.format('"wrapped":%d', wrapped)
   local cs = {}
   for k, v in pairs(counts) do cs[#cs + 1] = string.format('"%s":%d', k, v) end
   parts[#parts + 1] = '"diag_counts":{' .. table.concat(cs, ",") .. '}'
   parts[#parts + 1] = '"diag_samples":' .. jstr(samples)
   io.write("BENCHJSON {" .. table.concat(parts, ",") .. "}\n")
end
