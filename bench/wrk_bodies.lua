-- wrk script for bench/wrk.py: POSTs the bodies of a file (one per line) in turn, with the
-- bearer token from the environment, and prints the run's figures as one JSON line.
local bodies = {}
for line in io.lines(os.getenv("PERMSTORE_WRK_BODIES")) do bodies[#bodies + 1] = line end
local next_body = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PERMSTORE_WRK_TOKEN")

local threads_started = 0
function setup(thread)
  -- Threads start at different bodies so that they do not ask the same checks in lockstep.
  threads_started = threads_started + 1
  thread:set("next_body", threads_started * 7919)
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'PERMSTORE_WRK {"requests": %d, "duration_us": %d, "non_2xx": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean))
end
