# urbis — the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo serve test lint bench bench-temporal bench-notify bench-auth bench-federation bench-iot clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Auth is on: the first start prints an admin API key. Open data a city would publish is
# readable without one (URBIS_PUBLIC_TYPES); everything else needs the key.
DEMO_PUBLIC_TYPES ?= OffStreetParking,OnStreetParking,ParkingSpot,AirQualityObserved,WeatherObserved,NoiseLevelObserved,Streetlight,WasteContainer,BikeHireDockingStation,EVChargingStation,PublicTransportStop,PointOfInterest

demo: install
	URBIS_PUBLIC_TYPES="$${URBIS_PUBLIC_TYPES-$(DEMO_PUBLIC_TYPES)}" $(BIN)/urbis serve --demo

test: install
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python -m bench.run

bench-auth: install
	$(BIN)/python -m bench.auth_cost

bench-temporal: install
	$(BIN)/python -m bench.temporal

bench-notify: install
	$(BIN)/python -m bench.notify

bench-federation: install
	$(BIN)/python -m bench.federation

# MQTT measures of 1,000 devices through Mosquitto (127.0.0.1:1883) into the context, QoS 1.
bench-iot: install
	$(BIN)/python -m bench.iot --devices 1000 --rate 1500 --seconds 20

clean:
	rm -rf $(VENV) urbis-data .pytest_cache .mypy_cache .ruff_cache
