-- (b) Polling pending device codes at the token endpoint.
--   wrk -t1 -c64 -d20s --latency -s bench/wrk/poll.lua URL -- PATH CLIENT_ID CODES_FILE OFFSET
--
-- Codes are taken round-robin from CODES_FILE starting at OFFSET (bench/run.py passes the
-- "next_offset" the previous run printed: past every code it sent, including those still in
-- flight when it stopped), so with a pool of P codes at R requests/s each code comes round
-- every P/R seconds; run.py sizes P so that is longer than the 5 s interval. The answer mix
-- printed in done() shows whether any poll came too early (400:slow_down) instead of
-- 400:authorization_pending.
dofile("bench/wrk/report.lua")

local reqs = {}
local n, i = 0, 0
sent = 0
start = 0
local grant = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"

function init(args)
   local path, client_id, file = args[1], args[2], args[3]
   start = tonumber(args[4] or "0")
   local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
   for code in io.lines(file) do
      n = n + 1
      reqs[n] = wrk.format("POST", path, headers,
         "grant_type=" .. grant .. "&device_code=" .. code .. "&client_id=" .. client_id)
   end
   assert(n > 0, "no device codes in " .. file)
   i = start % n
end

function request()
   i = i + 1
   if i > n then i = 1 end
   sent = sent + 1
   return reqs[i]
end

function response(status, headers, body)
   count(status, body)
end

function done(summary, latency, requests)
   local next_offset = 0
   for _, t in ipairs(threads) do
      next_offset = math.max(next_offset, (t:get("start") or 0) + (t:get("sent") or 0))
   end
   report(summary, latency, string.format(',"next_offset":%d', next_offset))
end
