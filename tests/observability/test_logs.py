"""Structured logs: JSON lines with the request id, and never a secret."""

from __future__ import annotations

import logging

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from urbis.observability.logs import JsonFormatter, TextFormatter, redact, request_id

SECRETS = [
    ("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "eyJhbGci"),
    ("calling with apikey s3cr3t-key-value", "s3cr3t-key-value"),
    ("store postgresql://urbis:hunter2@db:5432/urbis", "hunter2"),
    ('{"password": "pa55w0rd", "user": "x"}', "pa55w0rd"),
    ("x-api-key=abcdef123456&q=1", "abcdef123456"),
    ("token eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYWRtaW4ifQ.sig_part-1", "sig_part-1"),
]


@pytest.mark.parametrize(("line", "secret"), SECRETS)
def test_secrets_are_masked(line: str, secret: str) -> None:
    assert secret not in redact(line)


@given(st.text(max_size=200))
def test_redact_never_fails_and_keeps_plain_text(text: str) -> None:
    out = redact(text)
    assert isinstance(out, str)
    if not any(k in text.lower() for k in ("bearer", "basic", "api", "pass", "secret", "token",
                                          "authorization", "admin_key", "://", "eyj")):
        assert out == text


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.getLogger("urbis.test").makeRecord(
        "urbis.test", logging.WARNING, __file__, 1, msg, args, None, extra=extra)
    return record


def test_json_lines_carry_request_id_and_extras() -> None:
    token = request_id.set("req-42")
    try:
        line = JsonFormatter().format(_record("entity %s changed by %s", "urn:x:1",
                                              "Bearer abc.def.ghi", tenant="city"))
    finally:
        request_id.reset(token)
    entry = orjson.loads(line)
    assert entry["request_id"] == "req-42"
    assert entry["level"] == "warning" and entry["logger"] == "urbis.test"
    assert entry["tenant"] == "city"
    assert entry["message"] == "entity urn:x:1 changed by Bearer ***"
    assert entry["time"].endswith("Z")


def test_exceptions_are_one_json_line() -> None:
    try:
        raise ValueError("password=letmein")
    except ValueError:
        import sys
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "boom", (),
                                                   sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = orjson.loads(line)
    assert "ValueError" in entry["exception"] and "letmein" not in entry["exception"]


def test_text_lines_end_with_request_id() -> None:
    token = request_id.set("abc")
    try:
        line = TextFormatter().format(_record("hello"))
    finally:
        request_id.reset(token)
    assert line.endswith("hello [abc]")
