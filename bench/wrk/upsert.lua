-- POST /ngsi-ld/v1/entityOperations/upsert, cycling over prepared bodies (one JSON array of
-- entities per line of the file, written by bench/data.py).
-- Arguments: bodies=PATH seed=S
local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(here .. "common.lua")

local requests = {}
local next_index = 1

function init(args)
  local opts = bench.init(args)
  local headers = {["Content-Type"] = "application/json", ["Accept"] = "application/json"}
  for line in io.lines(opts.bodies) do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("POST", "/ngsi-ld/v1/entityOperations/upsert",
                                           headers, line)
    end
  end
  -- Threads start at different bodies so that they do not write the same entities at once.
  next_index = ((bench_thread or 1) - 1) * 7 % #requests + 1
end

function request()
  local req = requests[next_index]
  next_index = next_index % #requests + 1
  return req
end
