-- POST PKIOperation row: the pkiMessage travels as the request body, in DER,
-- to /scep?operation=PKIOperation.  The DER is read from the file named by
-- the first script argument:
--   wrk ... -s bench/pkiop_post.lua URL -- /path/to/message.der
-- Counts every response whose status is not 2xx, so that a front end that
-- refuses the body (405, 413) shows up as failing instead of fast.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local path = args[1]
   if path == "--" then path = args[2] end
   if path == nil or path == "" then
      error("pkiop_post.lua: give the message file: wrk ... URL -- /path/to/message.der")
   end
   local f = assert(io.open(path, "rb"))
   local der = f:read("*a")
   f:close()
   -- a DER pkiMessage is a SEQUENCE (0x30) with a long-form length
   if #der < 4 or der:byte(1) ~= 0x30 then
      error("pkiop_post.lua: " .. path .. " does not hold a DER pkiMessage")
   end
   -- set before wrk builds its request, so the request stays static
   wrk.method = "POST"
   wrk.path = wrk.path .. "?operation=PKIOperation"
   wrk.body = der
   wrk.headers["Content-Type"] = "application/x-pki-message"
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
