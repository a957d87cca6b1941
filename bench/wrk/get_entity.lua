-- GET /ngsi-ld/v1/entities/{id} of a random entity among the loaded ones.
-- Arguments: entities=N seed=S
local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(here .. "common.lua")

local count = 1

function init(args)
  local opts = bench.init(args)
  count = tonumber(opts.entities or "1")
end

function request()
  local i = math.random(0, count - 1)
  return wrk.format("GET", "/ngsi-ld/v1/entities/" .. bench.id(i),
                    {["Accept"] = "application/json"})
end
