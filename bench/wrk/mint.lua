-- Preparation, not a measurement: create device codes through the server's own device endpoint
-- and append each device_code to a file, stopping once N were written.
--   wrk -t1 -c32 -d120s -s bench/wrk/mint.lua URL -- PATH CLIENT_ID N OUTFILE
dofile("bench/wrk/report.lua")

local req, want, out
written = 0

function init(args)
   local path, client_id = args[1], args[2]
   want = tonumber(args[3])
   out = assert(io.open(args[4], "a"))
   req = wrk.format("POST", path,
      { ["Content-Type"] = "application/x-www-form-urlencoded" },
      "client_id=" .. client_id .. "&scope=openid")
end

function request()
   return req
end

function response(status, headers, body)
   count(status, body)
   if status == 200 and written < want then
      local code = body:match('"device_code"%s*:%s*"([^"]+)"')
      if code then
         out:write(code, "\n")
         written = written + 1
      end
   end
   if written >= want then
      out:flush()
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   report(summary, latency)
end
