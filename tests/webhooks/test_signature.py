"""The signature the webhooks service puts on a POST, checked by the client SDK's verifier."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from stt_client import SIGNATURE_HEADER, verify_webhook
from stt_webhooks import signing

SECRET = "s3cret-for-tests"
BODY = b'{"request_id":"r1","status":"COMPLETED","message":"Transcription completed successfully"}'


def test_round_trip() -> None:
    assert SIGNATURE_HEADER == signing.SIGNATURE_HEADER
    assert verify_webhook(BODY, signing.signature(BODY, SECRET), SECRET)


def test_header_format() -> None:
    header = signing.signature(BODY, SECRET, timestamp=1_700_000_000)
    t, v1 = header.split(",")
    assert t == "t=1700000000"
    assert v1.startswith("v1=") and len(v1) == 3 + 64


def test_tampered_body_is_refused() -> None:
    header = signing.signature(BODY, SECRET)
    assert not verify_webhook(BODY.replace(b"COMPLETED", b"FAILED"), header, SECRET)
    assert not verify_webhook(BODY + b" ", header, SECRET)


def test_wrong_secret_is_refused() -> None:
    assert not verify_webhook(BODY, signing.signature(BODY, SECRET), "another-secret")


@pytest.mark.parametrize("age", [301, -301, 86_400])
def test_timestamp_outside_the_tolerance_is_refused(age: int) -> None:
    header = signing.signature(BODY, SECRET, timestamp=int(time.time()) - age)
    assert not verify_webhook(BODY, header, SECRET)


def test_tolerance_is_the_callers() -> None:
    header = signing.signature(BODY, SECRET, timestamp=int(time.time()) - 1000)
    assert verify_webhook(BODY, header, SECRET, tolerance=1200)


def test_the_timestamp_is_signed_too() -> None:
    """Moving `t` forward (to revive a captured request) breaks the signature."""
    old = signing.signature(BODY, SECRET, timestamp=int(time.time()) - 3600)
    mac = old.split(",v1=")[1]
    assert not verify_webhook(BODY, f"t={int(time.time())},v1={mac}", SECRET)


def test_any_of_several_signatures_may_match() -> None:
    good = signing.signature(BODY, SECRET)
    t, v1 = good.split(",")
    assert verify_webhook(BODY, f"{t},v1={'0' * 64},{v1}", SECRET)


@pytest.mark.parametrize(
    "header",
    ["", "garbage", "t=,v1=", f"t={int(time.time())}", "v1=abc", "t=²,v1=ab", "t=1,v1=é"],
    # fixed ids: a test id must not change between collections (pytest-xdist's workers)
    ids=["empty", "garbage", "empty-fields", "no-signature", "no-time", "odd-digit", "odd-mac"],
)
def test_malformed_headers_are_refused_not_raised(header: str) -> None:
    assert not verify_webhook(BODY, header, SECRET)


def test_the_plain_hmac_snippet_in_the_docs_agrees() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "def verify(" in b)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    header = signing.signature(BODY, SECRET)
    assert namespace["verify"](BODY, header, SECRET)
    assert not namespace["verify"](BODY + b"x", header, SECRET)
    assert not namespace["verify"](BODY, header, "another-secret")
