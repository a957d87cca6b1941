-- GET /health: the trivial endpoint every other figure is divided by.
local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(here .. "common.lua")

wrk.method = "GET"
wrk.path = "/health"
wrk.headers["Accept"] = "application/json"
