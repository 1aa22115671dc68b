-- POSTs the body in $WRK_BODY_FILE and prints one JSON line with counts and latency (us).
local f = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
-- More headers (credentials), one "Name: value" per line of $WRK_HEADERS.
for line in string.gmatch(os.getenv("WRK_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  if name then wrk.headers[name] = value end
end

-- A pause before each request of a connection, $WRK_PACE_MS on average (in ms): a load
-- below the server's limit, where latency is the server's own and not a queue's. Pauses
-- drawn at random (exponentially, as between independent clients' requests) keep the
-- connections from falling into step and arriving all at once.
local pace = tonumber(os.getenv("WRK_PACE_MS") or "")
if pace then
  math.randomseed(os.time())
  delay = function() return -math.log(1 - math.random()) * pace end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "socket_errors": %d, "non_2xx": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
