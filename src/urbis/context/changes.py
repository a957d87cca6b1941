"""A compact JSON form of entity changes (before, after), as the notification outbox keeps them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from urbis.context.model import Entity

Triple = tuple[str, Entity | None, Entity | None]  # (entity id, before, after)


def encode_changes(changes: Iterable[Triple]) -> bytes:
    """JSON of [[id, before, after], ...], each state [types, scopes, created, modified, attrs]."""
    return orjson.dumps([[i, _state(b), _state(a)] for i, b, a in changes])


def decode_changes(data: bytes | str) -> list[Triple]:
    """The changes of `encode_changes`, as fresh Entity objects."""
    return [(i, _entity(i, b), _entity(i, a)) for i, b, a in orjson.loads(data)]


def _state(entity: Entity | None) -> list[Any] | None:
    if entity is None:
        return None
    return [entity.types, entity.scopes, entity.created_at, entity.modified_at, entity.attrs]


def _entity(entity_id: str, state: list[Any] | None) -> Entity | None:
    if state is None:
        return None
    types, scopes, created, modified, attrs = state
    return Entity(entity_id, types, attrs, scopes, created, modified)
