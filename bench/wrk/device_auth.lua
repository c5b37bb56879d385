-- (a) Device authorization: POST the device endpoint as a public client.
--   wrk -t1 -c64 -d20s --latency -s bench/wrk/device_auth.lua URL -- PATH CLIENT_ID [KEEP_FILE]
-- With KEEP_FILE, every device_code handed out is appended to it (bench/run.py polls them next).
dofile("bench/wrk/report.lua")

local req, keep

function init(args)
   local path = args[1] or "/device_authorization"
   local client_id = args[2] or "bench-device"
   if args[3] then keep = assert(io.open(args[3], "a")) end
   req = wrk.format("POST", path,
      { ["Content-Type"] = "application/x-www-form-urlencoded" },
      "client_id=" .. client_id .. "&scope=openid")
end

function request()
   return req
end

function response(status, headers, body)
   count(status, body)
   if keep and status == 200 then
      local code = body:match('"device_code"%s*:%s*"([^"]+)"')
      if code then keep:write(code, "\n") end
   end
end

function done(summary, latency, requests)
   report(summary, latency)
end
