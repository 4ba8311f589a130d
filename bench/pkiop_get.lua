-- GET PKIOperation rows: the whole pkiMessage travels in the request line.
-- The query string (operation=PKIOperation&message=...) is read from the
-- file named by the first script argument:
--   wrk ... -s bench/pkiop_get.lua URL -- /path/to/query.txt
-- Counts every response whose status is not 2xx, so that a front end that
-- answers 400/414 to a long request line shows up as failing instead of fast.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local path = args[1]
   if path == "--" then path = args[2] end
   if path == nil or path == "" then
      error("pkiop_get.lua: give the query file: wrk ... URL -- /path/to/query.txt")
   end
   local f = assert(io.open(path, "rb"))
   local query = f:read("*a")
   f:close()
   query = query:gsub("[\r\n]+$", "")
   if not query:find("^operation=PKIOperation&message=") then
      error("pkiop_get.lua: " .. path .. " does not hold a PKIOperation query string")
   end
   -- set before wrk builds its request, so the request stays static
   wrk.path = wrk.path .. "?" .. query
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
