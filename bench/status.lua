-- status measurement: GET of the scep_status location, the URL as given
-- (add ?format=prometheus to the URL for the Prometheus text):
--   wrk -t1 -c1 ... -s bench/status.lua http://127.0.0.1:PORT/status

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "count.lua")

function init(args)
   count_init()
end
