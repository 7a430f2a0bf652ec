-- wrk script for the keel benchmark (use with -t 1).
--
-- Sends POST chat completions for BENCH_DURATION seconds (or until BENCH_MAX requests
-- have been sent), then DRAINS: no new chat request is started, the ones in flight are
-- awaited (idle connections send a cheap GET to BENCH_IDLE_PATH meanwhile, which is not
-- a chat request and is counted apart), and the thread stops once every chat request
-- sent has been answered. So "chat requests sent" == "chat responses seen", and a
-- gateway's trace count can be compared exactly with the 2xx responses counted here.
--
-- Environment: BENCH_BODY_FILE, BENCH_PATH, BENCH_AUTH (full header value or empty),
-- BENCH_DURATION (s), BENCH_MAX (0 = no cap), BENCH_IDLE_PATH, BENCH_OUT (JSON result).
-- Requests/s must be computed from elapsed_s (first request sent to last chat answer):
-- wrk's own duration is always the full -d.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local function readfile(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Counters are globals so that done() can read them with thread:get().
local chat_req, idle_req
local deadline, max_n
sent, ok2xx, non2xx, idle_seen, idle_sent = 0, 0, 0, 0, 0
t_start, t_end = 0, 0
local draining = false

function init(args)
  local body = readfile(os.getenv("BENCH_BODY_FILE"))
  local headers = { ["Content-Type"] = "application/json" }
  local auth = os.getenv("BENCH_AUTH") or ""
  if auth ~= "" then headers["Authorization"] = auth end
  chat_req = wrk.format("POST", os.getenv("BENCH_PATH"), headers, body)
  idle_req = wrk.format("GET", os.getenv("BENCH_IDLE_PATH") or "/health", {})
  deadline = now() + tonumber(os.getenv("BENCH_DURATION") or "5")
  max_n = tonumber(os.getenv("BENCH_MAX") or "0")
end

-- wrk calls request() once on thread 0's state before the run, to verify the script
-- (script_verify_request); that request is never sent, so it must not be counted.
local verified = false

function request()
  if not verified then
    verified = true
    return chat_req
  end
  if t_start == 0 then t_start = now() end
  if not draining then
    if (max_n > 0 and sent >= max_n) or now() >= deadline then
      draining = true
    end
  end
  if draining then
    idle_sent = idle_sent + 1
    return idle_req
  end
  sent = sent + 1
  return chat_req
end

-- Responses are told apart by their body: a chat answer is a 2xx whose body contains
-- "chat.completion"; any other 2xx is an idle probe; a non-2xx counts as a failed chat
-- request (the idle paths used never fail). A chat 2xx with a wrong body would show up
-- as chat_sent != chat_2xx + chat_non2xx (the drain then ends at wrk's -d cap).
function response(status, headers, body)
  if status >= 200 and status < 300 then
    if string.find(body, "chat.completion", 1, true) then
      ok2xx = ok2xx + 1
    else
      idle_seen = idle_seen + 1
    end
  else
    non2xx = non2xx + 1
  end
  if draining and t_end == 0 and ok2xx + non2xx >= sent then
    -- wrk's main thread sleeps for the whole -d regardless; the marker file tells the
    -- driver (bench/run.py) to send wrk SIGINT, which ends that sleep early.
    t_end = now()
    local f = io.open(os.getenv("BENCH_OUT") .. ".stopped", "w")
    if f then f:write("1"); f:close() end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local t = threads[1]
  local out = string.format(
    '{"elapsed_s": %.6f, "wrk_duration_us": %d, "responses_total": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"chat_sent": %d, "chat_2xx": %d, "chat_non2xx": %d, ' ..
    '"idle_sent": %d, "idle_seen": %d, ' ..
    '"lat_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}',
    t:get("t_end") - t:get("t_start"), summary.duration, summary.requests, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    t:get("sent"), t:get("ok2xx"), t:get("non2xx"),
    t:get("idle_sent"), t:get("idle_seen"),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean)
  local f = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  f:write(out)
  f:close()
end
