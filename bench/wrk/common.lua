-- Shared by the urbis bench scripts (loaded with dofile from each of them):
-- entity ids built exactly as bench/data.py builds them, key=value script arguments,
-- a per-thread random seed, and a done() hook that prints the results as one JSON line.

bench = {}
bench.types = {"OffStreetParking", "AirQualityObserved"}
bench.patch_attrs = {OffStreetParking = "availableSpotNumber", AirQualityObserved = "no2"}
bench.percentiles = {50, 75, 90, 95, 99, 99.9}

function bench.type_of(i)
  return bench.types[(i % #bench.types) + 1]
end

function bench.id(i)
  return string.format("urn:ngsi-ld:%s:bench-%06d", bench.type_of(i), i)
end

function bench.urlencode(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

-- "key=value" arguments (after `--` on the wrk command line) as a table.
function bench.parse_args(args)
  local out = {}
  for _, arg in ipairs(args or {}) do
    local key, value = string.match(arg, "^([%w_]+)=(.*)$")
    if key then out[key] = value end
  end
  return out
end

-- Number each thread so that each draws its own, reproducible random sequence.
local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("bench_thread", thread_count)
end

function bench.init(args)
  local opts = bench.parse_args(args)
  math.randomseed(tonumber(opts.seed or "1") * 1000 + (bench_thread or 0))
  return opts
end

function init(args)
  bench.init(args)
end

function done(summary, latency, requests)
  local parts = {}
  for _, p in ipairs(bench.percentiles) do
    parts[#parts + 1] = string.format('"%s": %d', tostring(p), latency:percentile(p))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "max": %d, "mean": %.1f, "stdev": %.1f, %s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(parts, ", ")))
end
