-- GetCACaps row: the smallest SCEP exchange (short GET, short text answer).

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "count.lua")

function init(args)
   wrk.path = wrk.path .. "?operation=GetCACaps&message=bench"
   count_init()
end
