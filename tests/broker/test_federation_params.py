"""A query forwarded to a source means the same query, whatever @context each side uses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from urbis.broker.federation_params import expressible, forwarded_attrs, query_params
from urbis.broker.queries import Paging, entity_query
from urbis.context.jsonld import TermMap, core_term_map

EX = "https://example.org/city/"


def caller() -> TermMap:
    """The caller's @context: its own short names for the city's vocabulary."""
    return TermMap.compile([{"temp": EX + "temperature", "Lamp": EX + "Streetlight",
                             "where": EX + "where"}], core="1.8")


@pytest.mark.parametrize("params", [
    {"type": "Lamp", "q": 'temp>20;name=="a b"|temp.unit==1', "attrs": "temp"},
    {"type": "(Lamp;Bench)|Tree", "scopeQ": "/Madrid/#", "orderBy": "temp;descending"},
    {"id": "urn:a,urn:b", "idPattern": "^urn:", "georel": "near;maxDistance==2000",
     "geometry": "Point", "coordinates": "[-3.7,40.4]", "geoproperty": "where"},
    {"type": "Lamp", "georel": "within", "geometry": "Polygon",
     "coordinates": "[[[0,0],[0,1],[1,1],[0,0]]]", "count": "true"},
])
def test_forwarded_queries_mean_the_same(params: dict[str, str]) -> None:
    paging = Paging()
    mine = entity_query(params, caller(), paging)
    source = core_term_map()  # the registration's @context: no short names for these IRIs
    if not expressible(mine, source):  # q takes no full IRIs: the caller's @context is sent
        assert "q" in params
        source = caller()
    sent = query_params(mine, source, limit=40, offset=20, attrs=mine.attrs)
    assert (sent["limit"], sent["offset"], sent["options"]) == ("40", "20", "sysAttrs")
    theirs = entity_query(sent, source, paging)
    assert theirs.order_by == (mine.order_by or [("id", False)])
    assert replace(theirs, limit=mine.limit, offset=mine.offset,
                   order_by=mine.order_by) == mine


def test_q_with_compact_iris_stays_in_the_sources_context() -> None:
    prefixed = TermMap.compile([{"ex": EX}], core="1.8")
    query = entity_query({"q": "temp>1"}, caller(), Paging())
    assert not expressible(query, core_term_map()) and expressible(query, prefixed)
    assert query_params(query, prefixed, limit=1, offset=0, attrs=None)["q"] == (
        "ex:temperature>1")


def test_attributes_asked_of_a_source() -> None:
    assert forwarded_attrs(None, None) is None
    assert forwarded_attrs(["a"], None) == {"a"}
    assert forwarded_attrs(None, frozenset({"a"})) == {"a"}
    assert forwarded_attrs(["a", "b"], frozenset({"b", "c"})) == {"b"}
    assert forwarded_attrs(["a"], frozenset({"c"})) == frozenset()
