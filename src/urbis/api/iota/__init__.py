"""The IoT agent's HTTP adapters: provisioning (/iot/services, /iot/devices) and southbound."""
