-- GET PKIOperation rows: the whole pkiMessage travels in the request line.
-- The query string (operation=PKIOperation&message=...) is read from the
-- file named by the first script argument:
--   wrk ... -s bench/pkiop_get.lua URL -- /path/to/query.txt

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "count.lua")

function init(args)
   local query, path = script_file(args, "pkiop_get.lua", "query")
   query = query:gsub("[\r\n]+$", "")
   if not query:find("^operation=PKIOperation&message=") then
      error("pkiop_get.lua: " .. path .. " does not hold a PKIOperation query string")
   end
   -- set before wrk builds its request, so the request stays static
   wrk.path = wrk.path .. "?" .. query
   count_init()
end
