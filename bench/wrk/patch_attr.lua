-- PATCH /ngsi-ld/v1/entities/{id}/attrs/{attr}: a new reading of one numeric attribute
-- of a random entity (availableSpotNumber of a car park, no2 of an air-quality station).
-- Arguments: entities=N seed=S
local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(here .. "common.lua")

local count = 1
local headers = {["Content-Type"] = "application/json"}

function init(args)
  local opts = bench.init(args)
  count = tonumber(opts.entities or "1")
  if opts.auth then headers["Authorization"] = opts.auth end
end

function request()
  local i = math.random(0, count - 1)
  local kind = bench.type_of(i)
  local value
  if kind == "OffStreetParking" then
    value = tostring(math.random(0, 50))
  else
    value = string.format("%.1f", 5 + math.random() * 115)
  end
  local body = '{"value": ' .. value .. ', "observedAt": "' ..
               os.date("!%Y-%m-%dT%H:%M:%SZ") .. '"}'
  local path = "/ngsi-ld/v1/entities/" .. bench.id(i) .. "/attrs/" .. bench.patch_attrs[kind]
  return wrk.format("PATCH", path, headers, body)
end
