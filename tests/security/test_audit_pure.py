"""The pure parts of the audit log: hashing, sealing, what changed, filter parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from urbis.api.admin_audit import parse_filter
from urbis.context.actor import Actor, Call
from urbis.context.audit import (
    AuditRecord,
    ChainState,
    at_text,
    batch_record,
    chain_hash,
    changed_attributes,
    seal,
)
from urbis.context.errors import BadRequestData
from urbis.context.model import Entity
from urbis.context.temporal import to_micros
from urbis.storage.base import Applied


def rec(n: int) -> AuditRecord:
    return AuditRecord(at="2026-01-01T00:00:00.000000Z", tenant="", principal=f"p{n}",
                       roles=["admin"], operation="op", seq=n)


def test_seal_links_each_record_to_the_previous() -> None:
    state = ChainState()
    sealed = seal([rec(1), rec(2), rec(3)], state)
    assert [r.chain_pos for r in sealed] == [1, 2, 3]
    assert sealed[1].hash == chain_hash(sealed[0].hash or "", sealed[1])
    assert state.head_hash == sealed[2].hash and state.head_pos == 3
    # every member counts: change one and the hash differs
    changed = rec(2)
    changed.chain_pos, changed.reason = 2, "x"
    assert chain_hash(sealed[0].hash or "", changed) != sealed[1].hash
    moved = rec(2)
    moved.chain_pos = 3
    assert chain_hash(sealed[0].hash or "", moved) != sealed[1].hash


def test_changed_attributes_and_batch_record() -> None:
    a = Entity("urn:x:1", ["T"], {"s": [{"type": "Property", "value": 1}],
                                  "k": [{"type": "Property", "value": 0}]})
    b = Entity("urn:x:1", ["T"], {"s": [{"type": "Property", "value": 2}],
                                  "k": [{"type": "Property", "value": 0}],
                                  "n": [{"type": "Property", "value": 0}]})
    assert changed_attributes(a, b) == {"s", "n"}
    assert changed_attributes(None, a) == {"s", "k"} == changed_attributes(a, None)
    actor = Actor(tenant="t", principal="apikey:1:x", roles=frozenset({"operator", "device"}),
                  client="::1")
    many = [Applied(f"urn:x:{i}", None, a) for i in range(1500)] + [Applied("urn:x:0", a, b)]
    record = batch_record(Call(actor, "BatchService.upsert", "r1"), "t", many)
    assert record.entity_count == 1500 and len(record.entity_ids) == 1000
    assert record.roles == ["device", "operator"] and record.attributes == ["k", "n", "s"]
    assert (record.client, record.request_id, record.principal) == ("::1", "r1", "apikey:1:x")


@given(st.integers(min_value=-62135596800_000000, max_value=253402300799_999998))
def test_at_text_sorts_like_time(micros: int) -> None:
    text = at_text(micros)
    assert to_micros(text) == micros and len(text) == 27
    assert (at_text(micros) < at_text(micros + 1))


_NAMES = st.sampled_from(["tenant", "principal", "operation", "entityId", "decision", "since",
                          "until", "limit", "offset", "other"])


@given(st.dictionaries(_NAMES, st.text(max_size=40), max_size=6), st.booleans())
def test_parse_filter_accepts_or_says_why(params: dict[str, str], export: bool) -> None:
    try:
        selection = parse_filter(params, export)
    except BadRequestData as err:
        assert err.detail
        return
    assert selection.limit >= 1 and selection.offset >= 0
    assert selection.decision in (None, "allow", "deny")


@pytest.mark.parametrize("since", ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00",
                                   "2026-01-01T00:00:00.000000Z"])
def test_bounds_are_normalised(since: str) -> None:
    assert parse_filter({"since": since}, False).since == "2026-01-01T00:00:00.000000Z"
