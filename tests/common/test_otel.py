"""stt_common.otel without a collector (fast tier; tests/observability/test_otel.py sends real
spans from real services): when export is wanted, and that it changes nothing when off."""

from __future__ import annotations

import pytest

from stt_common import otel, tracing


@pytest.fixture(autouse=True)
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*otel.ENDPOINT_VARIABLES, "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)


def test_wanted_only_with_an_endpoint_and_not_when_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not otel.wanted()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    assert otel.wanted()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not otel.wanted()


def test_off_is_a_no_op_that_leaves_the_trace_context_alone() -> None:
    assert not otel.setup("test") and not otel.enabled()
    context = tracing.new_trace()
    with tracing.use(context):
        with otel.step("download"):
            assert tracing.current.get() is context  # no child made when nothing is exported
        with otel.hop("consume", None):
            assert tracing.current.get() is context
        otel.record("projection", 0)
    assert tracing.current.get() is None
