-- (c) Discovery: GET the OpenID Provider metadata.
--   wrk -t1 -c64 -d20s --latency -s bench/wrk/discovery.lua URL -- PATH
dofile("bench/wrk/report.lua")

local req

function init(args)
   req = wrk.format("GET", args[1] or "/.well-known/openid-configuration")
end

function request()
   return req
end

function response(status, headers, body)
   count(status, body)
end

function done(summary, latency, requests)
   report(summary, latency)
end
