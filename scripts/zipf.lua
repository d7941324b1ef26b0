-- wrk script for scripts/ring-cpu.sh: GET /o/<i> with i drawn from a Zipf distribution.
--   wrk -s scripts/zipf.lua URL -- n=10000 alpha=0.91 host=HOST
-- done() prints one line starting with WRKRESULT (requests, rps, latency percentiles, errors).
local reqs, cdf, n = {}, {}, 0

function init(args)
   local opt = { n = "10000", alpha = "0.91", host = nil }
   for _, a in ipairs(args) do
      local k, v = string.match(a, "^([^=]+)=(.*)$")
      if k then opt[k] = v end
   end
   n = tonumber(opt.n)
   local alpha, sum = tonumber(opt.alpha), 0.0
   local headers = {}
   if opt.host then headers["Host"] = opt.host end
   for r = 1, n do
      sum = sum + 1.0 / (r ^ alpha)
      cdf[r] = sum
      reqs[r] = wrk.format("GET", "/o/" .. (r - 1), headers)
   end
   for r = 1, n do cdf[r] = cdf[r] / sum end
   cdf[n] = 1.0
end

function request()
   local u, lo, hi = math.random(), 1, n
   while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cdf[mid] < u then lo = mid + 1 else hi = mid end
   end
   return reqs[lo]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "WRKRESULT requests=%d rps=%.1f p50_us=%d p99_us=%d err_status=%d err_timeout=%d\n",
      summary.requests, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), e.status, e.timeout))
end
