-- wrk script of bench/collector_load.py: POST /v1/batch with BENCH_BATCH_SIZE track messages,
-- each with a unique messageId, write key in HTTP Basic (as the SDKs send it).
local batch_size = tonumber(os.getenv("BENCH_BATCH_SIZE") or "10")
local auth = os.getenv("BENCH_AUTH")
local headers = { ["Authorization"] = auth, ["Content-Type"] = "application/json" }
local counter = 0
local thread_tag = "t"

init = function(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  thread_tag = string.format("%x", math.random(1, 2^30))
end

request = function()
  local parts = {}
  local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
  for i = 1, batch_size do
    counter = counter + 1
    parts[i] = string.format(
      '{"type":"track","event":"Product Viewed","messageId":"%s-%d","anonymousId":"v-%d",'
        .. '"timestamp":"%s","properties":{"product_id":"p-%d","price":9.5},'
        .. '"context":{"library":{"name":"wrk"}}}',
      thread_tag, counter, math.random(1, 100000), now, math.random(1, 500))
  end
  return wrk.format("POST", "/v1/batch", headers, '{"batch":[' .. table.concat(parts, ",") .. ']}')
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
