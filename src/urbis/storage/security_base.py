"""Storage Protocols of the security layer: API keys and the audit log."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from urbis.context.audit import AuditFilter, AuditRecord, ChainState
from urbis.context.credentials import ApiKey


@runtime_checkable
class ApiKeyStore(Protocol):
    """API keys (hashes only), shared by every tenant and worker."""

    async def add_key(self, key: ApiKey) -> None:
        """Store a new key; AlreadyExists if its id is taken."""

    async def get_key(self, key_id: str) -> ApiKey | None:
        """A key by its public id (revoked ones included)."""

    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""

    async def revoke_key(self, key_id: str, at: str) -> bool:
        """Mark a key revoked; False when there is no such active key."""


# --- audit log ------------------------------------------------------------------------------


@runtime_checkable
class AuditStore(Protocol):
    """The append-only audit log (urbis.context.audit), with its hash chain.

    Every backend also offers a journal for the entity store (registered by open_stores)
    that appends one record per write batch in the batch's own transaction. Records may be
    appended unsealed (a backend with one writer seals them at once); `seal` chains them,
    one sealer at a time across every worker.
    """

    async def append(self, record: AuditRecord) -> None:
        """Add one record (a denial, a read of sensitive attributes) in its own transaction."""

    async def query(self, selection: AuditFilter) -> list[AuditRecord]:
        """Records matching the filter, in seq order (offset / limit, or after_seq)."""

    async def seal(self, limit: int = 1000) -> int:
        """Chain up to `limit` unsealed records in seq order; how many were sealed."""

    async def chain(self, after_pos: int, limit: int) -> list[AuditRecord]:
        """Sealed records with chain_pos > after_pos, in chain order (verification)."""

    async def state(self) -> ChainState:
        """The anchor, the head and the number of unsealed records."""

    async def purge(self, before: str) -> int:
        """Delete sealed records written before `before` (a DateTime), oldest first, keeping
        the hash of the last one deleted as the chain's anchor; how many were deleted."""
