-- GET /ngsi-ld/v1/entities?type=T&q=Q&georel=near;maxDistance==D&geometry=Point&coordinates=..
-- around a random point of the city: "car parks with free spaces near me".
-- Arguments: bbox=minLon,minLat,maxLon,maxLat type=T q=Q distance=D limit=L seed=S
local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(here .. "common.lua")

local box = {}
local prefix = ""

function init(args)
  local opts = bench.init(args)
  for v in string.gmatch(opts.bbox, "[^,]+") do box[#box + 1] = tonumber(v) end
  prefix = "/ngsi-ld/v1/entities?type=" .. bench.urlencode(opts.type) ..
           "&q=" .. bench.urlencode(opts.q) ..
           "&georel=" .. bench.urlencode("near;maxDistance==" .. opts.distance) ..
           "&geometry=Point"
  if opts.limit and #opts.limit > 0 then prefix = prefix .. "&limit=" .. opts.limit end
end

function request()
  local lon = box[1] + math.random() * (box[3] - box[1])
  local lat = box[2] + math.random() * (box[4] - box[2])
  local coords = bench.urlencode(string.format("[%.6f,%.6f]", lon, lat))
  return wrk.format("GET", prefix .. "&coordinates=" .. coords, {["Accept"] = "application/json"})
end
