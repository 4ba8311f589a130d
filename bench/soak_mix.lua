-- The request mix of bench/soak: valid SCEP requests, and every 20th
-- request (5%) an invalid one.
--
--   wrk ... -s bench/soak_mix.lua http://127.0.0.1:PORT/scep -- DIR
--
-- DIR holds the messages bench/soak makes with build/scep-msg:
--   get4k.txt get16k.txt get60k.txt   GET PKIOperation query strings
--                                     (operation=PKIOperation&message=...)
--   post4k.der post16k.der post48k.der POST PKIOperation bodies (DER)
--   badsig.txt                        a GET PKIOperation query whose
--                                     signature does not verify
--   badsig.der                        a DER pkiMessage likewise
-- (and a 70,000-byte POST body, over scep_max_message, made here)
--
-- Every request carries "Connection: close": a reload makes the old
-- workers close their idle keep-alive connections, and a request already
-- on its way on one of them is lost (stock nginx does this too; wrk does
-- not retry and counts a read error).  With a connection per request
-- every request sent must be answered.
--
-- Every request also carries "X-Soak: valid" or "X-Soak: invalid", and
-- the soak's gateway echoes it back (add_header X-Soak $http_x_soak
-- always), so that response(), which does not see its request, knows
-- which kind it answers.
--
-- done() prints one line for bench/soak to parse:
--   SOAK requests=N valid_sent=N valid_2xx=N valid_non2xx=N
--        valid_bad_status=S invalid_sent=N invalid_4xx=N invalid_non4xx=N
--        invalid_bad_status=S untagged=N connect=N read=N write=N
--        timeout=N p50_us=N p99_us=N max_us=N   (all on one line)

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

local function slurp(dir, name)
   local f = assert(io.open(dir .. "/" .. name, "rb"))
   local s = f:read("*a")
   f:close()
   if #s == 0 then
      error("soak_mix.lua: " .. dir .. "/" .. name .. " is empty")
   end
   return s
end

local valid, invalid = {}, {}

local function add(list, n, method, query, body)
   local headers = {
      ["Connection"] = "close",
      ["X-Soak"] = (list == valid) and "valid" or "invalid",
   }
   if body then
      headers["Content-Type"] = "application/x-pki-message"
   end
   local req = wrk.format(method, wrk.path .. "?" .. query, headers, body)
   for _ = 1, n do
      table.insert(list, req)
   end
end

function init(args)
   local dir = args[1]
   if dir == "--" then dir = args[2] end
   if dir == nil or dir == "" then
      error("soak_mix.lua: give the message folder: wrk ... URL -- DIR")
   end

   local q = {}
   for _, name in ipairs({ "get4k.txt", "get16k.txt", "get60k.txt",
                           "badsig.txt" }) do
      q[name] = slurp(dir, name):gsub("[\r\n]+$", "")
      if not q[name]:find("^operation=PKIOperation&message=") then
         error("soak_mix.lua: " .. name .. " is not a PKIOperation query")
      end
   end

   -- 19 valid requests in a round, in this order of weights
   add(valid, 4, "GET", "operation=GetCACaps")
   add(valid, 3, "GET", "operation=GetCACert")
   add(valid, 3, "GET", q["get4k.txt"])
   add(valid, 2, "GET", q["get16k.txt"])
   add(valid, 1, "GET", q["get60k.txt"])
   add(valid, 3, "POST", "operation=PKIOperation", slurp(dir, "post4k.der"))
   add(valid, 2, "POST", "operation=PKIOperation", slurp(dir, "post16k.der"))
   add(valid, 1, "POST", "operation=PKIOperation", slurp(dir, "post48k.der"))

   -- the invalid ones, one per round, in turn
   add(invalid, 1, "GET", "operation=GetCRLs")                 -- unknown_operation
   add(invalid, 1, "GET", "operation=PKIOperation&message=%25%25%25*") -- bad_base64
   add(invalid, 1, "GET", q["badsig.txt"])                     -- bad_signature
   add(invalid, 1, "POST", "operation=PKIOperation",
       slurp(dir, "badsig.der"))                               -- bad_signature
   add(invalid, 1, "GET", "operation=GetCACert&message=a%0D%0Ab") -- bad_ca_identifier
   add(invalid, 1, "POST", "operation=PKIOperation",
       string.rep("x", 70000))                                 -- message_too_large

   -- threads start their rounds at different places
   n = (id or 0) * 7

   valid_sent, valid_2xx, valid_non2xx, valid_bad_status = 0, 0, 0, 0
   invalid_sent, invalid_4xx, invalid_non4xx, invalid_bad_status = 0, 0, 0, 0
   untagged = 0
end

function request()
   n = n + 1
   if n % 20 == 0 then
      invalid_sent = invalid_sent + 1
      return invalid[math.floor(n / 20) % #invalid + 1]
   end
   valid_sent = valid_sent + 1
   return valid[n % #valid + 1]
end

function response(status, headers, body)
   local kind = headers["X-Soak"]
   if kind == "valid" then
      if status >= 200 and status <= 299 then
         valid_2xx = valid_2xx + 1
      else
         valid_non2xx = valid_non2xx + 1
         valid_bad_status = status
      end
   elseif kind == "invalid" then
      if status >= 400 and status <= 499 then
         invalid_4xx = invalid_4xx + 1
      else
         invalid_non4xx = invalid_non4xx + 1
         invalid_bad_status = status
      end
   else
      untagged = untagged + 1
   end
end

function done(summary, latency, requests)
   local sum = {}
   local names = { "valid_sent", "valid_2xx", "valid_non2xx",
                   "invalid_sent", "invalid_4xx", "invalid_non4xx",
                   "untagged" }
   local vbad, ibad = 0, 0
   for _, name in ipairs(names) do sum[name] = 0 end
   for _, t in ipairs(threads) do
      for _, name in ipairs(names) do
         sum[name] = sum[name] + t:get(name)
      end
      if t:get("valid_bad_status") ~= 0 then vbad = t:get("valid_bad_status") end
      if t:get("invalid_bad_status") ~= 0 then ibad = t:get("invalid_bad_status") end
   end
   local e = summary.errors
   io.write(string.format(
      "SOAK requests=%d valid_sent=%d valid_2xx=%d valid_non2xx=%d " ..
      "valid_bad_status=%d invalid_sent=%d invalid_4xx=%d " ..
      "invalid_non4xx=%d invalid_bad_status=%d untagged=%d connect=%d " ..
      "read=%d write=%d timeout=%d p50_us=%d p99_us=%d max_us=%d\n",
      summary.requests, sum.valid_sent, sum.valid_2xx, sum.valid_non2xx,
      vbad, sum.invalid_sent, sum.invalid_4xx, sum.invalid_non4xx, ibad,
      sum.untagged, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
