-- wrk script: POST /api/Auth with valid credentials and a unique captcha token per request.
-- env: LOGIN_USER, LOGIN_PASSWORD, LOGIN_PATH (default /api/Auth)
-- Prints  RESULT <same 11 fields as report.lua>  and  STATUS <2xx> <401> <408> <429> <503> <other>
-- write_result (the RESULT line) comes from report.lua, next to this script; wrk names it "@<path>".
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local threads = {}
local n_threads = 0

function setup(thread)
  n_threads = n_threads + 1
  thread:set("tid", n_threads)
  table.insert(threads, thread)
end

function init(args)
  user = os.getenv("LOGIN_USER") or "bench"
  pass = os.getenv("LOGIN_PASSWORD") or "bench-password"
  path = os.getenv("LOGIN_PATH") or "/api/Auth"
  math.randomseed(os.time() * 1000 + (tid or 0))
  salt = string.format("%08x", math.random(0, 0x7fffffff))
  counter = 0
  s2xx, s401, s408, s429, s503, sother = 0, 0, 0, 0, 0, 0
end

function request()
  counter = counter + 1
  local body = string.format('{"UserName":"%s","Password":"%s","CaptchaToken":"bench-%s-%d-%d"}',
    user, pass, salt, tid or 0, counter)
  return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then s2xx = s2xx + 1
  elseif status == 401 then s401 = s401 + 1
  elseif status == 408 then s408 = s408 + 1
  elseif status == 429 then s429 = s429 + 1
  elseif status == 503 then s503 = s503 + 1
  else sother = sother + 1 end
end

function done(summary, latency, requests)
  write_result(summary, latency)
  local t = { 0, 0, 0, 0, 0, 0 }
  for _, th in ipairs(threads) do
    t[1] = t[1] + th:get("s2xx"); t[2] = t[2] + th:get("s401"); t[3] = t[3] + th:get("s408")
    t[4] = t[4] + th:get("s429"); t[5] = t[5] + th:get("s503"); t[6] = t[6] + th:get("sother")
  end
  io.write(string.format("STATUS %d %d %d %d %d %d\n", t[1], t[2], t[3], t[4], t[5], t[6]))
end
