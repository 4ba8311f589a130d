-- POST PKIOperation row: the pkiMessage travels as the request body, in DER,
-- to /scep?operation=PKIOperation.  The DER is read from the file named by
-- the first script argument:
--   wrk ... -s bench/pkiop_post.lua URL -- /path/to/message.der

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "count.lua")

function init(args)
   local der, path = script_file(args, "pkiop_post.lua", "message")
   -- a DER pkiMessage is a SEQUENCE (0x30) with a long-form length
   if #der < 4 or der:byte(1) ~= 0x30 then
      error("pkiop_post.lua: " .. path .. " does not hold a DER pkiMessage")
   end
   -- set before wrk builds its request, so the request stays static
   wrk.method = "POST"
   wrk.path = wrk.path .. "?operation=PKIOperation"
   wrk.body = der
   wrk.headers["Content-Type"] = "application/x-pki-message"
   count_init()
end
