"""Support layer: metrics, structured logs and request ids."""
