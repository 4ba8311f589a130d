-- What every benchmark script shares (each loads it with dofile): counts
-- every response whose status is not 2xx, so that a front end that refuses
-- a request shows up as failing instead of fast, and ends the run with one
-- "BENCH key=value ..." line that bench/run reads.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- count_init(): call from the script's init()
function count_init()
   non2xx = 0
   bad_status = 0
end

-- script_file(args, name, what): the contents of the file named by the
-- first script argument (wrk ... URL -- FILE)
function script_file(args, name, what)
   local path = args[1]
   if path == "--" then path = args[2] end
   if path == nil or path == "" then
      error(name .. ": give the " .. what .. " file: wrk ... URL -- /path/to/file")
   end
   local f = assert(io.open(path, "rb"))
   local data = f:read("*a")
   f:close()
   return data, path
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
