"""`traceparent` parsing, formatting and children; the context reaching the JSON log lines."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from stt_common import tracing
from stt_common.logs import JsonFormatter

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


def test_parse_and_format_round_trip() -> None:
    context = tracing.parse(VALID)
    assert context == tracing.TraceContext(TRACE, SPAN, 1)
    assert context.header() == VALID
    assert tracing.parse(VALID.encode()) == context
    assert tracing.parse(f"  {VALID} ") == context  # optional whitespace around the value
    assert tracing.parse(f"00-{TRACE}-{SPAN}-00").flags == 0  # not sampled is kept as it is


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        VALID.upper(),  # upper-case hex is invalid
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}1-01",
        f"00_{TRACE}_{SPAN}_01",
        b"\xff\xfe",
    ],
)
def test_malformed_values_are_none(value: str | bytes | None) -> None:
    assert tracing.parse(value) is None


def test_a_later_version_is_read_by_its_first_four_fields() -> None:
    assert tracing.parse(f"cc-{TRACE}-{SPAN}-01-what-comes-next") == tracing.TraceContext(
        TRACE, SPAN, 1
    )
    assert tracing.parse(f"cc-{TRACE}-{SPAN}-01x") is None


def test_child_keeps_trace_and_flags_with_a_new_span() -> None:
    parent = tracing.TraceContext(TRACE, SPAN, 0)
    child = parent.child()
    assert (child.trace_id, child.flags) == (TRACE, 0)
    assert child.span_id != SPAN and tracing.parse(child.header()) == child


def test_continue_from_starts_a_new_trace_when_there_is_none() -> None:
    fresh = tracing.continue_from(None)
    assert tracing.parse(fresh.header()) == fresh and fresh.flags == tracing.SAMPLED
    assert tracing.continue_from(None).trace_id != fresh.trace_id
    assert tracing.continue_from(tracing.parse(VALID)).trace_id == TRACE


def test_kafka_headers() -> None:
    context = tracing.TraceContext(TRACE, SPAN)
    assert context.kafka_headers() == [("traceparent", VALID.encode())]
    other = [("stt-origin-topic", b"x"), ("traceparent", VALID.encode())]
    assert tracing.from_kafka(other) == context
    assert tracing.from_kafka(None) is None
    assert tracing.from_kafka([("traceparent", b"nonsense")]) is None
    assert tracing.current_kafka_headers() is None
    with tracing.use(context):
        assert tracing.current_kafka_headers() == context.kafka_headers()


def _line(message: str, **extra: object) -> dict[str, object]:
    record = logging.makeLogRecord({"msg": message, "levelname": "INFO", "name": "t", **extra})
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


def test_log_lines_carry_the_trace_id_while_a_job_is_handled() -> None:
    assert "trace_id" not in _line("idle")
    with tracing.use(tracing.TraceContext(TRACE, SPAN)):
        assert _line("about a job", request_id="r1")["trace_id"] == TRACE
        assert _line("explicit", trace_id="given")["trace_id"] == "given"  # extra= wins
    assert "trace_id" not in _line("after")


async def test_tasks_and_threads_inherit_the_context() -> None:
    async def seen_by_task() -> str | None:
        await asyncio.sleep(0)
        return tracing.current_trace_id()

    with tracing.use(tracing.TraceContext(TRACE, SPAN)):
        task = asyncio.create_task(seen_by_task())  # as the worker runs a job
        in_thread = await asyncio.to_thread(tracing.current_trace_id)
    assert await task == TRACE and in_thread == TRACE
    assert tracing.current_trace_id() is None
