-- GET /ngsi-ld/v1/entities/{id} of a random entity among the loaded ones.
-- Arguments: entities=N seed=S
local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(here .. "common.lua")

local count = 1
local headers = {["Accept"] = "application/json"}

function init(args)
  local opts = bench.init(args)
  count = tonumber(opts.entities or "1")
  if opts.auth then headers["Authorization"] = opts.auth end
end

function request()
  local i = math.random(0, count - 1)
  return wrk.format("GET", "/ngsi-ld/v1/entities/" .. bench.id(i), headers)
end
