-- wrk script: POST pre-built request bodies read from files, to the URL given on wrk's command line.
--
--   WRK_BODY=bench/work/serve/bodies/mlserver_logistic_1.json \
--     taskset -c 0 wrk -t1 -c32 -d10s --latency -s bench/wrk_post.lua http://127.0.0.1:18080/v2/models/logistic/infer
--   wrk ... -s bench/wrk_post.lua URL -- BODY1 [BODY2 ...]     (paths as wrk script arguments instead)
--
-- Several bodies (arguments, or WRK_BODY=a,b,c) are sent in turn. A JSON body goes with
-- Content-Type: application/json. A body FILE.bin with a FILE.bin.hlen beside it is an Open Inference
-- Protocol binary tensor body: it goes with Content-Type: application/octet-stream and
-- Inference-Header-Content-Length: <the number in FILE.bin.hlen>.
-- Requests are formatted once, up front. There is deliberately no response() callback: parsing every
-- reply would cost the load generator CPU (wrk still counts non-2xx replies and socket errors).

local requests = {}
local n = 0

local function slurp(path, mode)
  local f = io.open(path, mode)
  if not f then error("wrk_post.lua: cannot open " .. path) end
  local s = f:read("*a")
  f:close()
  return s
end

local function add(path)
  local body = slurp(path, "rb")
  if #body == 0 then error("wrk_post.lua: empty body " .. path) end
  local headers = { ["Content-Type"] = "application/json" }
  local hf = io.open(path .. ".hlen", "r")
  if hf then
    local hlen = hf:read("*a"):match("^%s*(%d+)%s*$")
    hf:close()
    if not hlen then error("wrk_post.lua: bad header length in " .. path .. ".hlen") end
    headers["Content-Type"] = "application/octet-stream"
    headers["Inference-Header-Content-Length"] = hlen
  end
  n = n + 1
  requests[n] = wrk.format("POST", nil, headers, body)
end

function init(args)
  local paths = {}
  for _, a in ipairs(args) do paths[#paths + 1] = a end
  if #paths == 0 then
    local env = os.getenv("WRK_BODY")
    if not env or env == "" then error("wrk_post.lua: give body files as script arguments or in WRK_BODY") end
    for p in env:gmatch("[^,]+") do paths[#paths + 1] = p end
  end
  for _, p in ipairs(paths) do add(p) end
end

local i = 0
function request()
  i = i % n + 1
  return requests[i]
end
