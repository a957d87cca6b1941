"""Payload decoders by name, as device provisioning refers to them (`payload_decoder`)."""

from __future__ import annotations

from urbis.decoders import cayenne, json_measures, senml, ultralight
from urbis.decoders.base import Decoder

_DECODERS: dict[str, Decoder] = {
    "ultralight": ultralight.decode,
    "json": json_measures.decode,
    "senml": senml.decode,
    "cayennelpp": cayenne.decode,
}
_ALIASES = {"ul": "ultralight", "ul20": "ultralight", "cayenne": "cayennelpp", "lpp": "cayennelpp"}


def canonical(name: str) -> str:
    """The registered name for `name` or one of its aliases (case-insensitive)."""
    key = name.strip().lower()
    return _ALIASES.get(key, key)


def get_decoder(name: str) -> Decoder:
    """The decoder registered as `name`; KeyError with the known names if there is none."""
    try:
        return _DECODERS[canonical(name)]
    except KeyError:
        known = ", ".join(sorted(_DECODERS))
        raise KeyError(f"no payload decoder named {name!r} (known: {known})") from None


def register_decoder(name: str, decoder: Decoder) -> None:
    """Add a decoder (e.g. for one device model); names are unique."""
    key = canonical(name)
    if key in _DECODERS:
        raise ValueError(f"a payload decoder named {key!r} exists already")
    _DECODERS[key] = decoder


def decoder_names() -> list[str]:
    """The registered decoder names."""
    return sorted(_DECODERS)
