"""`stt replay` picks jobs per tenant: the same request_id from two tenants is two jobs to replay,
each keyed by its own job id (a replay keyed by the bare request_id would land on another job)."""

from __future__ import annotations

from aiokafka.structs import TopicPartition

from stt_cli.replay import Filters, latest_jobs
from stt_common.messages import SubmitEvent
from stt_testing.fakes import consumer_record

TP = TopicPartition("stt.jobs.submit", 0)


def test_the_same_request_id_from_two_tenants_is_two_jobs_to_replay() -> None:
    events = [
        SubmitEvent(request_id="post-1", media_url="https://media.example/a.mp3"),
        SubmitEvent(request_id="post-1", media_url="https://media.example/b.mp3", tenant="crawler"),
        SubmitEvent(request_id="post-1", media_url="https://media.example/c.mp3", tenant="crawler"),
    ]
    records = [
        consumer_record(TP, i, e.model_dump_json(exclude_none=True).encode(), e.job_id.encode())
        for i, e in enumerate(events)
    ]
    jobs, unreadable = latest_jobs(records, Filters(request_ids={"post-1"}))
    assert unreadable == 0
    assert {job_id: e.media_url for job_id, e in jobs.items()} == {
        "post-1": "https://media.example/a.mp3",
        "crawler/post-1": "https://media.example/c.mp3",  # the newest of that tenant's
    }
    assert jobs["crawler/post-1"].tenant == "crawler"
