-- A mix of SCEP traffic for failover tests: mostly GET GetCACaps, and
-- every 10th request a GET PKIOperation whose query string
-- (operation=PKIOperation&message=...) is read from the file named by the
-- first script argument.  A second argument "close" sends
-- "Connection: close" with every request (a new connection each time).
--   wrk ... -s t/lib/mix.lua URL -- /path/to/query.txt [close]
-- done() prints one line that a test can parse:
--   MIX requests=N non2xx=N bad_status=S pkiop=N connect=N read=N
--       write=N timeout=N status=N
-- (all on one line).  Every response whose status is not 2xx counts in
-- non2xx; connect/read/write/timeout are wrk's socket errors.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local path, close = args[1], args[2]
   if path == "--" then path, close = args[2], args[3] end
   if path == nil or path == "" then
      error("mix.lua: give the query file: wrk ... URL -- /path/to/query.txt")
   end
   local f = assert(io.open(path, "rb"))
   local query = f:read("*a")
   f:close()
   query = query:gsub("[\r\n]+$", "")
   if not query:find("^operation=PKIOperation&message=") then
      error("mix.lua: " .. path .. " does not hold a PKIOperation query string")
   end

   if close == "close" then
      wrk.headers["Connection"] = "close"
   end

   caps_req = wrk.format("GET", wrk.path .. "?operation=GetCACaps")
   pki_req = wrk.format("GET", wrk.path .. "?" .. query)

   sent = 0
   pkiop = 0
   non2xx = 0
   bad_status = 0
end

function request()
   sent = sent + 1
   if sent % 10 == 0 then
      pkiop = pkiop + 1
      return pki_req
   end
   return caps_req
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      bad_status = status
   end
end

function done(summary, latency, requests)
   local n, bad, pki = 0, 0, 0
   for _, t in ipairs(threads) do
      n = n + t:get("non2xx")
      pki = pki + t:get("pkiop")
      if t:get("bad_status") ~= 0 then bad = t:get("bad_status") end
   end
   local e = summary.errors
   io.write(string.format(
      "MIX requests=%d non2xx=%d bad_status=%d pkiop=%d " ..
      "connect=%d read=%d write=%d timeout=%d status=%d\n",
      summary.requests, n, bad, pki,
      e.connect, e.read, e.write, e.timeout, e.status))
end
