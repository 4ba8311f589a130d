-- status measurement: GET of the scep_status location, the URL as given
-- (add ?format=prometheus to the URL for the Prometheus text):
--   wrk -t1 -c1 ... -s bench/status.lua http://127.0.0.1:PORT/status
-- Counts every response whose status is not 2xx, so that a refused or
-- failing status request shows up as failing instead of fast.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   non2xx = 0
   bad_status = 0
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      bad_status = status
   end
end

function done(summary, latency, requests)
   local n, bad = 0, 0
   for _, t in ipairs(threads) do
      n = n + t:get("non2xx")
      if t:get("bad_status") ~= 0 then bad = t:get("bad_status") end
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d bad_status=%d " ..
      "connect=%d read=%d write=%d timeout=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      n, bad, e.connect, e.read, e.write, e.timeout))
end
