-- GetCACert row: short GET, answer is the DER CA certificate (about 1 KB).

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "count.lua")

function init(args)
   wrk.path = wrk.path .. "?operation=GetCACert&message=bench"
   count_init()
end
