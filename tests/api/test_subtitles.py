"""Subtitles: the formatting alone (parsed back with the `srt` and `webvtt-py` libraries), then
the `format=` query against the real API process."""

from __future__ import annotations

import html
import time
import uuid
from datetime import timedelta

import httpx
import pytest
import srt
import webvtt

from stt_api import subtitles
from stt_common.messages import Segment
from tests.api import job_records

SEGMENTS = [
    Segment(start=0.0, end=2.5, text="Xin chào"),
    Segment(start=2.5, end=5.0004, text="Tom & Jerry <b>bold</b> a --> b"),
    Segment(start=3599.9996, end=3725.25, text="  past the\n\nfirst   hour "),
]


def seconds(clock: str) -> float:
    hours, minutes, secs = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(secs)


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    captions = webvtt.from_string(text)
    return [(seconds(c.start), seconds(c.end), html.unescape(c.text)) for c in captions]


def test_timestamps() -> None:
    assert subtitles.timestamp(0, ",") == "00:00:00,000"
    assert subtitles.timestamp(3661.0046, ",") == "01:01:01,005"
    assert subtitles.timestamp(59.9996, ".") == "00:01:00.000"
    assert subtitles.timestamp(100 * 3600 + 0.25, ".") == "100:00:00.250"
    assert subtitles.timestamp(-1, ",") == "00:00:00,000"


def test_srt_parses_back_with_numbered_cues_and_exact_times() -> None:
    text = subtitles.to_srt(SEGMENTS)
    cues = list(srt.parse(text))
    assert [c.index for c in cues] == [1, 2, 3]
    assert cues[0].start == timedelta(0) and cues[0].end == timedelta(seconds=2.5)
    assert cues[1].end == timedelta(seconds=5)
    assert cues[2].start == timedelta(hours=1)
    assert cues[2].end == timedelta(hours=1, minutes=2, seconds=5.25)
    assert "01:00:00,000 --> 01:02:05,250" in text
    assert cues[1].content == "Tom & Jerry <b>bold</b> a -> b"
    assert cues[2].content == "past the first hour"
    assert text.split("\n\n")[0] == "1\n00:00:00,000 --> 00:00:02,500\nXin chào"
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_vtt_parses_back_with_escaped_text() -> None:
    text = subtitles.to_vtt(SEGMENTS)
    assert text.startswith("WEBVTT\n\n")
    assert "Tom &amp; Jerry &lt;b&gt;bold&lt;/b&gt; a -&gt; b" in text
    assert "<" not in text and text.count("-->") == 3
    assert "01:00:00.000 --> 01:02:05.250" in text
    assert parse_vtt(text) == [
        (0.0, 2.5, "Xin chào"),
        (2.5, 5.0, "Tom & Jerry <b>bold</b> a -> b"),
        (3600.0, 3725.25, "past the first hour"),
    ]


def test_empty_segments_are_left_out_and_numbering_has_no_gaps() -> None:
    segments = [Segment(start=0, end=1, text=" "), Segment(start=1, end=2, text="one")]
    assert [c.index for c in srt.parse(subtitles.to_srt(segments))] == [1]
    assert parse_vtt(subtitles.to_vtt(segments)) == [(1.0, 2.0, "one")]
    assert subtitles.to_txt(segments) == "one\n"


def test_no_segments_at_all() -> None:
    assert subtitles.to_srt([]) == ""
    assert subtitles.to_vtt([]) == "WEBVTT\n"
    assert parse_vtt(subtitles.to_vtt([])) == []
    assert subtitles.to_txt([]) == ""


def test_a_cue_never_ends_before_it_starts() -> None:
    (cue,) = srt.parse(subtitles.to_srt([Segment(start=2, end=1, text="x")]))
    assert cue.start == cue.end == timedelta(seconds=2)


def test_without_segments_the_transcription_is_one_cue() -> None:
    text = subtitles.render("srt", None, "hello there", 4.2)
    (cue,) = srt.parse(text)
    assert (cue.end, cue.content) == (timedelta(seconds=4.2), "hello there")


# ---- through the API process -------------------------------------------------------------------


@pytest.mark.infra
async def test_formats_of_a_completed_job(
    client: httpx.AsyncClient, api_env: dict[str, str]
) -> None:
    rid = "subs-" + uuid.uuid4().hex[:10]
    async with job_records.store(api_env) as store:
        await store.apply(job_records.completed(rid, SEGMENTS), time.time())
    url = f"/api/v1/transcribe/{rid}"
    resp = await client.get(url, params={"format": "srt"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/x-subrip")
    assert [c.content for c in srt.parse(resp.text)] == [
        "Xin chào",
        "Tom & Jerry <b>bold</b> a -> b",
        "past the first hour",
    ]
    resp = await client.get(url, params={"format": "vtt"})
    assert resp.headers["content-type"].startswith("text/vtt")
    assert len(parse_vtt(resp.text)) == 3
    resp = await client.get(url, params={"format": "txt"})
    assert resp.text.splitlines()[0] == "Xin chào"
    for params in ({}, {"format": "json"}):
        body = (await client.get(url, params=params)).json()
        assert body["status"] == "COMPLETED" and len(body["segments"]) == 3


@pytest.mark.infra
async def test_subtitles_of_a_processing_job_are_409(client: httpx.AsyncClient) -> None:
    rid = "subs-" + uuid.uuid4().hex[:10]
    media = "http://minio-host/bucket/audio.mp3"
    await client.post("/api/v1/transcribe", json={"request_id": rid, "media_url": media})
    for fmt in ("srt", "vtt", "txt"):
        resp = await client.get(f"/api/v1/transcribe/{rid}", params={"format": fmt})
        assert resp.status_code == 409
        assert "PROCESSING" in resp.json()["detail"]


@pytest.mark.infra
async def test_unknown_format_is_422(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/transcribe/anything", params={"format": "docx"})
    assert resp.status_code == 422
    assert "format" in resp.json()["detail"]
