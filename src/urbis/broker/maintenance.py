"""Store maintenance for adapters (the CLI): schema upgrades and telling an unreachable store.

The work is the storage layer's (`urbis.storage.admin`); adapters reach it through here.
"""

from __future__ import annotations

from urbis.storage.admin import SchemaError, StoreUnreachable, Upgrade, is_unreachable
from urbis.storage.admin import upgrade_schema as _upgrade_schema

__all__ = ["SchemaError", "StoreUnreachable", "Upgrade", "is_unreachable", "upgrade_schema"]


async def upgrade_schema(url: str) -> Upgrade:
    """Bring the store named by `url` to this urbis's schema version."""
    return await _upgrade_schema(url)
