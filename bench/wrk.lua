-- The harness's wrk script (Debian's wrk 4.1, LuaJIT). Its settings come from a Lua file the
-- harness writes (path in BENCH_WRK_CONFIG): the requests to send (taken in turn, from a random
-- start per thread), an optional think time per request (`period_ms`, with `jitter`), whether to
-- count answers by status, and the threshold of "slow" answers. `done()` prints one line,
-- `BENCH-JSON {...}`, that the harness parses.
--
-- wrk calls delay() before every request of a connection, the first one included, so a waiting
-- user's first poll is spread uniformly over one period (no thundering herd at the start), after
-- `grace_ms` in which wrk opens all its connections, and every later one comes `period_ms`
-- (+/- jitter) after the previous answer.

local config = dofile(os.getenv("BENCH_WRK_CONFIG"))

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_number", #threads)
end

local prepared = {}
local position = 0
sent = 0
first_delays = 0
statuses = {}

function init(args)
   math.randomseed(os.time() + 7919 * (thread_number or 0))
   for i, r in ipairs(config.requests) do
      prepared[i] = wrk.format("GET", r.path, r.headers)
   end
   position = math.random(#prepared) - 1
end

function request()
   sent = sent + 1
   position = position % #prepared + 1
   return prepared[position]
end

if config.period_ms then
   function delay()
      if first_delays < config.connections_per_thread then
         first_delays = first_delays + 1
         return config.grace_ms + math.random() * config.period_ms
      end
      local spread = 1 - config.jitter + 2 * config.jitter * math.random()
      return config.period_ms * spread
   end
end

if config.count_statuses then
   function response(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
   end
end

-- The number of answers slower than `threshold_us` (µs), from the latency histogram: bisect
-- on the percentile where the latency crosses it.
local function count_slower(latency, total, threshold_us)
   if total == 0 or latency.max <= threshold_us then
      return 0
   end
   local low, high = 0.0, 100.0
   for _ = 1, 40 do
      local middle = (low + high) / 2
      if latency:percentile(middle) > threshold_us then
         high = middle
      else
         low = middle
      end
   end
   return math.floor((100.0 - high) / 100.0 * total + 0.5)
end

function done(summary, latency, requests)
   local total_sent = -1 -- wrk sends one request through request() to check it, never sent
   local by_status = {}
   for _, thread in ipairs(threads) do
      total_sent = total_sent + (thread:get("sent") or 0)
      local counts = thread:get("statuses") or {}
      for status, count in pairs(counts) do
         by_status[status] = (by_status[status] or 0) + count
      end
   end
   local parts = {}
   local function add(name, value)
      table.insert(parts, string.format('"%s": %.0f', name, value))
   end
   add("duration_us", summary.duration)
   add("requests", summary.requests)
   add("bytes", summary.bytes)
   add("sent", total_sent)
   for _, name in ipairs({"connect", "read", "write", "status", "timeout"}) do
      add("errors_" .. name, summary.errors[name])
   end
   add("latency_min_us", latency.min)
   add("latency_max_us", latency.max)
   add("latency_mean_us", latency.mean)
   for _, p in ipairs({50, 90, 99, 99.9}) do
      add("p" .. string.gsub(tostring(p), "%.", "_") .. "_us", latency:percentile(p))
   end
   add("slow", count_slower(latency, summary.requests, config.slow_us or 2000000))
   local codes = {}
   for status, count in pairs(by_status) do
      table.insert(codes, string.format('"%d": %.0f', status, count))
   end
   table.insert(parts, '"statuses": {' .. table.concat(codes, ", ") .. "}")
   io.write("BENCH-JSON {" .. table.concat(parts, ", ") .. "}\n")
end
