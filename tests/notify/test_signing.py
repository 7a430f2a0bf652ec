"""The JSON webhook's signature: what ``sign`` makes, ``verify`` accepts, and only that."""

from __future__ import annotations

import hashlib
import hmac

from keel.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify

SECRET = "whsec-test-0123456789abcdef"
NOW = 1_796_300_000.0
BODY = b'{"version":1,"status":"firing"}'


def test_a_signed_body_verifies() -> None:
    headers = sign(SECRET, BODY, "d1", now=NOW)
    assert headers["Keel-Delivery"] == "d1"
    assert headers[TIMESTAMP_HEADER] == str(int(NOW))
    assert verify(SECRET, BODY, headers, now=NOW + 10)


def test_the_signature_is_the_documented_hmac() -> None:
    headers = sign(SECRET, BODY, "d1", now=NOW)
    digest = hmac.new(SECRET.encode(), f"{int(NOW)}.".encode() + BODY, hashlib.sha256)
    assert headers[SIGNATURE_HEADER] == f"v1={digest.hexdigest()}"


def test_an_altered_body_does_not_verify() -> None:
    headers = sign(SECRET, BODY, "d1", now=NOW)
    assert not verify(SECRET, BODY.replace(b"firing", b"resolved"), headers, now=NOW)
    assert not verify(SECRET, BODY + b" ", headers, now=NOW)


def test_another_secret_does_not_verify() -> None:
    headers = sign(SECRET, BODY, "d1", now=NOW)
    assert not verify(SECRET + "x", BODY, headers, now=NOW)


def test_a_timestamp_outside_the_tolerance_does_not_verify() -> None:
    headers = sign(SECRET, BODY, "d1", now=NOW)
    assert verify(SECRET, BODY, headers, now=NOW + 300)
    assert not verify(SECRET, BODY, headers, now=NOW + 301)
    assert not verify(SECRET, BODY, headers, now=NOW - 301)  # from the future
    assert verify(SECRET, BODY, headers, now=NOW + 3000, tolerance_s=3600)


def test_a_changed_timestamp_does_not_verify() -> None:
    headers = sign(SECRET, BODY, "d1", now=NOW)
    assert not verify(SECRET, BODY, {**headers, TIMESTAMP_HEADER: str(int(NOW) + 1)},
                      now=NOW)


def test_header_names_are_matched_in_any_case() -> None:
    headers = {k.lower(): v for k, v in sign(SECRET, BODY, "d1", now=NOW).items()}
    assert verify(SECRET, BODY, headers, now=NOW)


def test_one_matching_signature_among_several_verifies() -> None:
    """While a secret is rotated the header may carry a signature for each."""
    new = sign(SECRET, BODY, "d1", now=NOW)[SIGNATURE_HEADER]
    old = sign("old-secret-0123456789", BODY, "d1", now=NOW)[SIGNATURE_HEADER]
    headers = {TIMESTAMP_HEADER: str(int(NOW)), SIGNATURE_HEADER: f"{old}, {new}"}
    assert verify(SECRET, BODY, headers, now=NOW)


def test_missing_or_malformed_headers_do_not_verify() -> None:
    good = sign(SECRET, BODY, "d1", now=NOW)
    assert not verify(SECRET, BODY, {}, now=NOW)
    assert not verify(SECRET, BODY, {**good, TIMESTAMP_HEADER: "soon"}, now=NOW)
    assert not verify(SECRET, BODY, {**good, TIMESTAMP_HEADER: "-5"}, now=NOW)
    assert not verify(SECRET, BODY, {**good, SIGNATURE_HEADER: "v0=" + "0" * 64}, now=NOW)
    assert not verify(SECRET, BODY, {TIMESTAMP_HEADER: good[TIMESTAMP_HEADER]}, now=NOW)
