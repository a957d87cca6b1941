"""urbis: an open city data platform."""

__version__ = "0.1.0"
