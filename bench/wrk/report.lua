-- Shared by the scenario scripts (loaded with dofile; bench/run.py runs wrk from the repository
-- root). Counts answers by status and OAuth error in response(), and prints one JSON line from
-- done(): requests/s, p50/p99 latency (microseconds) from wrk's own latency histogram, socket
-- errors, and the answer mix summed over every thread.

threads = {}
counts = {}

function count(status, body)
   local key = tostring(status)
   if status ~= 200 and body then
      local err = body:match('"error"%s*:%s*"([%w_]+)"')
      if err then key = key .. ":" .. err end
   end
   counts[key] = (counts[key] or 0) + 1
end

function setup(thread)
   table.insert(threads, thread)
end

local function json_counts()
   local total = {}
   for _, t in ipairs(threads) do
      local c = t:get("counts") or {}
      for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
   end
   local parts = {}
   for k, v in pairs(total) do
      table.insert(parts, string.format('"%s":%d', k, v))
   end
   return "{" .. table.concat(parts, ",") .. "}"
end

function report(summary, latency, extra)
   local seconds = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,' ..
      '"p99_ms":%.3f,"mean_ms":%.3f,"max_ms":%.3f,"errors":{"connect":%d,"read":%d,' ..
      '"write":%d,"status":%d,"timeout":%d},"answers":%s%s}\n',
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.mean / 1000, latency.max / 1000,
      e.connect, e.read, e.write, e.status, e.timeout, json_counts(), extra or ""))
end
