"""Webhook signature verification (`Waycore-Signature: t=<unix>,v1=<hex>`) and envelope parsing."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from waycore.webhooks import (
    DEFAULT_TOLERANCE_SECONDS,
    SIGNATURE_HEADER,
    SignatureError,
    WebhookEvent,
    parse_event,
    sign,
    verify,
)

SECRET = "whsec_test_0123456789abcdef"
NOW = 1_772_625_600  # 2026-03-04T12:00:00Z
BODY = json.dumps(
    {
        "id": "evt_abc123",
        "type": "connection.status_changed",
        "createdAt": "2026-03-04T12:00:00Z",
        "data": {"connectionId": "conn_123", "status": "active", "previousStatus": "draft"},
    }
).encode()


def _hex(secret: str, t: int, body: bytes) -> str:
    """The documented scheme, computed independently of the module under test."""
    return hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()


def test_header_name_and_tolerance_are_the_documented_ones() -> None:
    assert SIGNATURE_HEADER == "Waycore-Signature"
    assert DEFAULT_TOLERANCE_SECONDS == 300


def test_sign_produces_the_documented_hmac_of_timestamp_dot_body() -> None:
    assert sign(SECRET, BODY, NOW) == f"t={NOW},v1={_hex(SECRET, NOW, BODY)}"


def test_sign_verify_round_trip_returns_the_timestamp() -> None:
    assert verify(SECRET, sign(SECRET, BODY, NOW), BODY, now=NOW) == NOW


def test_sign_defaults_to_the_current_time() -> None:
    header = sign(SECRET, BODY)
    assert verify(SECRET, header, BODY) > 0


def test_wrong_secret_is_rejected() -> None:
    header = sign("whsec_someone_else", BODY, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, header, BODY, now=NOW)


@pytest.mark.parametrize("index", [0, len(BODY) // 2, len(BODY) - 1])
def test_one_changed_body_byte_is_rejected(index: int) -> None:
    header = sign(SECRET, BODY, NOW)
    tampered = bytearray(BODY)
    tampered[index] ^= 0x01
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, header, bytes(tampered), now=NOW)


def test_reparsed_and_reserialised_body_is_rejected() -> None:
    """Verification is over the raw bytes: whitespace differences after re-encoding matter."""
    header = sign(SECRET, BODY, NOW)
    reencoded = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    assert reencoded != BODY
    with pytest.raises(SignatureError):
        verify(SECRET, header, reencoded, now=NOW)


@pytest.mark.parametrize(
    ("age", "accepted"),
    [
        (0, True),
        (299, True),
        (300, True),  # just inside the window
        (301, False),  # stale: a replay
        (3600, False),
        (-299, True),
        (-300, True),
        (-301, False),  # dated in the future beyond the window
        (-86_400, False),
    ],
)
def test_timestamp_window_is_300_seconds_either_way(age: int, accepted: bool) -> None:
    t = NOW - age
    header = sign(SECRET, BODY, t)
    if accepted:
        assert verify(SECRET, header, BODY, now=NOW) == t
    else:
        with pytest.raises(SignatureError, match="tolerance"):
            verify(SECRET, header, BODY, now=NOW)


def test_a_stale_timestamp_is_rejected_even_with_a_correct_signature() -> None:
    t = NOW - 301
    header = f"t={t},v1={_hex(SECRET, t, BODY)}"
    with pytest.raises(SignatureError):
        verify(SECRET, header, BODY, now=NOW)


def test_a_resigned_timestamp_does_not_validate_the_old_signature() -> None:
    """Moving `t` forward to dodge the window breaks the HMAC, which covers `t`."""
    old = NOW - 3600
    header = f"t={NOW},v1={_hex(SECRET, old, BODY)}"
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, header, BODY, now=NOW)


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header_is_rejected(header: str | None) -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify(SECRET, header, BODY, now=NOW)


GOOD = _hex(SECRET, NOW, BODY)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(f"v1={GOOD}", id="no-t"),
        pytest.param(f"t={NOW}", id="no-v1"),
        pytest.param(f"t=yesterday,v1={GOOD}", id="non-numeric-t"),
        pytest.param(f"t=-{NOW},v1={GOOD}", id="negative-t"),
        pytest.param(f"t={NOW}.5,v1={GOOD}", id="fractional-t"),
        pytest.param(f"t=\u00b2,v1={GOOD}", id="unicode-digit-t"),
        pytest.param(f"t={NOW},v1", id="v1-without-equals"),
        pytest.param(f"t{NOW},v1{GOOD}", id="no-equals-at-all"),
        pytest.param("garbage", id="garbage"),
        pytest.param(",", id="only-comma"),
        pytest.param(f"t={NOW},v1=\u00e9{GOOD[1:]}", id="non-ascii-signature"),
        pytest.param(f"t={NOW},v0={GOOD}", id="unknown-scheme-only"),
        pytest.param(f"t={NOW},v1=", id="empty-signature"),
    ],
)
def test_garbled_headers_raise_signature_error(header: str) -> None:
    with pytest.raises(SignatureError):
        verify(SECRET, header, BODY, now=NOW)


def test_signature_error_is_a_value_error() -> None:
    assert issubclass(SignatureError, ValueError)


def test_multiple_v1_values_accept_when_one_matches() -> None:
    """During a secret rotation Waycore may send one signature per secret."""
    stale = _hex("whsec_old_secret", NOW, BODY)
    for header in (f"t={NOW},v1={stale},v1={GOOD}", f"t={NOW},v1={GOOD},v1={stale}"):
        assert verify(SECRET, header, BODY, now=NOW) == NOW


def test_multiple_v1_values_reject_when_none_matches() -> None:
    a, b = _hex("whsec_a", NOW, BODY), _hex("whsec_b", NOW, BODY)
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, f"t={NOW},v1={a},v1={b}", BODY, now=NOW)


def test_spaces_after_commas_and_unknown_parts_are_tolerated() -> None:
    header = f"t={NOW}, v0=deadbeef, v1={GOOD}"
    assert verify(SECRET, header, BODY, now=NOW) == NOW


def test_uppercase_hex_signature_does_not_match() -> None:
    """The signature is compared exactly as lower-case hex, as Waycore documents it."""
    with pytest.raises(SignatureError):
        verify(SECRET, f"t={NOW},v1={GOOD.upper()}", BODY, now=NOW)


def test_custom_tolerance_is_honoured() -> None:
    header = sign(SECRET, BODY, NOW - 61)
    with pytest.raises(SignatureError):
        verify(SECRET, header, BODY, tolerance=60, now=NOW)
    assert verify(SECRET, header, BODY, tolerance=61, now=NOW) == NOW - 61


# ---------------------------------------------------------------------- parse_event


def test_parse_event_reads_the_envelope() -> None:
    event = parse_event(BODY)
    assert event == WebhookEvent(
        id="evt_abc123",
        type="connection.status_changed",
        created_at="2026-03-04T12:00:00Z",
        data={"connectionId": "conn_123", "status": "active", "previousStatus": "draft"},
    )


def test_parse_event_without_data_gives_an_empty_dict() -> None:
    body = b'{"id": "evt_1", "type": "test", "createdAt": "2026-03-04T12:00:00Z", "extra": 1}'
    event = parse_event(body)
    assert (event.id, event.type, event.data) == ("evt_1", "test", {})


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="text"),
        pytest.param(b"\xff\xfe\x00", id="binary"),
        pytest.param(b"<html></html>", id="html"),
    ],
)
def test_parse_event_rejects_non_json(body: bytes) -> None:
    with pytest.raises(ValueError, match="not JSON"):
        parse_event(body)


@pytest.mark.parametrize("missing", ["id", "type", "createdAt"])
def test_parse_event_rejects_missing_keys(missing: str) -> None:
    payload = json.loads(BODY)
    del payload[missing]
    with pytest.raises(ValueError, match=missing):
        parse_event(json.dumps(payload).encode())


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'"evt"', id="string"),
        pytest.param(b'{"id": "e", "type": "t", "createdAt": "c", "data": [1]}', id="data-list"),
    ],
)
def test_parse_event_rejects_non_object_shapes(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_event(body)
