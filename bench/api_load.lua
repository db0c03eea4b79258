-- wrk script of bench/api_load.py: GET /v1/profiles/{id} for random ids of a file, with a key.
-- Environment: BENCH_IDS_FILE (one raw id per line), BENCH_API_KEY, BENCH_DELAY_MS (mean pause
-- of a connection between requests; 0: closed loop at full speed).
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS_FILE")) do
  ids[#ids + 1] = line
end
local headers = { ["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY") }
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

local function escape(id)
  return (id:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

init = function(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

request = function()
  return wrk.format("GET", "/v1/profiles/" .. escape(ids[math.random(#ids)]), headers)
end

if delay_ms > 0 then
  -- uniform in [0.5, 1.5] x the mean: connections do not march in step
  delay = function()
    return delay_ms * (0.5 + math.random())
  end
end

done = function(summary, latency, requests)
  io.write(string.format(
    '{"wrk": {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, '
      .. '"timeout": %d}}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout))
end
