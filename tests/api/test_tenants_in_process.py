"""Tenants, job lists and metadata in this process (`create_app` through `httpx.ASGITransport`,
the job store's Lua on fakeredis, Kafka a fake publisher): the fast tier. The same behaviour
through the real servers is tests/e2e/test_tenants.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from stt_api.auth import Caller, NoApiKeysError, accepted, match
from stt_common.job_store import job_key
from stt_common.messages import JobRecord, JobStatus
from stt_common.settings import ApiSettings, Settings
from stt_common.tenants import key_of_entry
from stt_testing.fakes import InProcessApi, in_process_api

BARE = "bare-key"
ALPHA = "alpha-key"
BETA = "beta-key"
ROOT = "root-key"
SEED_404 = "Job not found: {}"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path) -> InProcessApi:
    monkeypatch.chdir(tmp_path)  # no ./.env
    keys = f"{BARE},alpha:{ALPHA},beta:{BETA},ops:{ROOT}:admin"
    monkeypatch.setenv("STT_API_KEYS", keys)
    return in_process_api(Settings())


@pytest.fixture
async def http(api: InProcessApi) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


def as_(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def job(request_id: str, **extra: object) -> dict[str, object]:
    return {"request_id": request_id, "media_url": "https://media.example/a.mp3", **extra}


def test_key_entries_name_tenant_and_role() -> None:
    settings = ApiSettings(api_keys=["plain", "crawler:c1", "ops:o1:admin"])  # type: ignore[arg-type]
    keys = accepted(settings)
    assert match("plain", keys) == Caller("default")
    assert match("c1", keys) == Caller("crawler")
    assert match("o1", keys) == Caller("ops", admin=True)
    assert match("crawler:c1", keys) is None  # the secret is the part after the tenant
    assert match("nope", keys) is None
    # A key with colons is written with its tenant: everything after the first colon is the key.
    colons = accepted(ApiSettings(api_keys=["default:a:b", "t:c:d:admin"]))  # type: ignore[arg-type]
    assert match("a:b", colons) == Caller("default")
    assert match("c:d", colons) == Caller("t", admin=True)
    assert [key_of_entry(e) for e in ("plain", "t:k", "t:k:admin", "default:a:b")] == [
        "plain",
        "k",
        "k",
        "a:b",
    ]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("Bad Tenant:k", "tenant must be"),
        (":k", "tenant must be"),
        ("t:", "empty key"),
    ],
)
def test_malformed_key_entries_are_refused_without_echoing_them(entry: str, problem: str) -> None:
    with pytest.raises(NoApiKeysError) as refused:
        accepted(ApiSettings(api_keys=["ok", entry]))  # type: ignore[arg-type]
    assert problem in str(refused.value) and "#2" in str(refused.value)
    assert entry not in str(refused.value)


def test_one_key_for_two_tenants_is_refused() -> None:
    with pytest.raises(NoApiKeysError, match="two tenants"):
        accepted(ApiSettings(api_keys=["a:same", "b:same"]))  # type: ignore[arg-type]


async def test_bare_key_keeps_todays_keys_and_bodies(
    http: httpx.AsyncClient, api: InProcessApi
) -> None:
    resp = await http.post("/api/v1/transcribe", json=job("t-1"), headers=as_(BARE))
    assert resp.status_code == 202
    assert "tenant" not in resp.json() and "metadata" not in resp.json()
    assert await api.redis.exists(job_key("t-1"))  # the key from before tenants
    [(event, _)] = api.publisher.published
    assert event.tenant is None and event.job_id == "t-1"
    assert b"tenant" not in event.model_dump_json(exclude_none=True).encode()


async def test_another_tenants_job_is_not_found_on_every_route(
    http: httpx.AsyncClient, api: InProcessApi
) -> None:
    await http.post("/api/v1/transcribe", json=job("t-2"), headers=as_(ALPHA))
    assert await api.redis.exists(job_key("alpha/t-2"))
    assert not await api.redis.exists(job_key("t-2"))
    own = await http.get("/api/v1/transcribe/t-2", headers=as_(ALPHA))
    assert own.status_code == 200 and own.json()["tenant"] == "alpha"
    for key in (BETA, BARE):
        for method, params in (
            ("GET", {}),
            ("GET", {"format": "srt"}),
            ("GET", {"wait": "0.3"}),
            ("DELETE", {}),
        ):
            resp = await http.request(
                method, "/api/v1/transcribe/t-2", params=params, headers=as_(key)
            )
            assert resp.status_code == 404, (key, method, params)
            assert resp.json() == {"detail": SEED_404.format("t-2")}
    # Naming the tenant is for admin keys only.
    named = await http.get("/api/v1/transcribe/t-2", params={"tenant": "alpha"}, headers=as_(BETA))
    assert named.status_code == 403
    admin = await http.get("/api/v1/transcribe/t-2", params={"tenant": "alpha"}, headers=as_(ROOT))
    assert admin.status_code == 200 and admin.json()["request_id"] == "t-2"
    assert (await http.get("/api/v1/transcribe/t-2", headers=as_(ALPHA))).status_code == 200


async def test_same_request_id_from_two_tenants_is_two_jobs(
    http: httpx.AsyncClient, api: InProcessApi
) -> None:
    a = await http.post("/api/v1/transcribe", json=job("t-3"), headers=as_(ALPHA))
    b = await http.post("/api/v1/transcribe", json=job("t-3"), headers=as_(BETA))
    again = await http.post("/api/v1/transcribe", json=job("t-3"), headers=as_(ALPHA))
    assert [r.json()["message"] for r in (a, b, again)] == [
        "Job submitted successfully",
        "Job submitted successfully",
        "Transcription in progress",  # idempotent within one tenant
    ]
    assert [e.job_id for e, _ in api.publisher.published] == ["alpha/t-3", "beta/t-3"]
    assert await http.delete("/api/v1/transcribe/t-3", headers=as_(BETA))
    assert api.publisher.forgotten == ["beta/t-3"]
    assert (await http.get("/api/v1/transcribe/t-3", headers=as_(ALPHA))).status_code == 200


async def test_metadata_is_stored_and_echoed(http: httpx.AsyncClient, api: InProcessApi) -> None:
    meta = {"post_id": "42", "channel": "news"}
    resp = await http.post("/api/v1/transcribe", json=job("t-4", metadata=meta), headers=as_(BARE))
    assert resp.json()["metadata"] == meta
    [(event, _)] = api.publisher.published
    assert event.metadata == meta
    assert (await http.get("/api/v1/transcribe/t-4", headers=as_(BARE))).json()["metadata"] == meta


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata has 17 keys; at most 16"),
        ({"a": "x" * 2100}, "bytes (keys and values, UTF-8); at most 2048"),
        ({"a b": "x"}, "metadata key 'a b' must be"),
        ({"a": 5}, "valid string"),
        ("post-42", "valid dictionary"),
    ],
)
async def test_bad_metadata_is_a_422_naming_the_problem(
    http: httpx.AsyncClient, metadata: object, problem: str
) -> None:
    resp = await http.post(
        "/api/v1/transcribe", json=job("t-5", metadata=metadata), headers=as_(BARE)
    )
    assert resp.status_code == 422
    assert problem in resp.json()["detail"] and "metadata" in resp.json()["detail"]


async def store(api: InProcessApi, request_id: str, tenant: str | None, **fields: object) -> None:
    record = JobRecord(request_id=request_id, tenant=tenant, **fields)  # type: ignore[arg-type]
    await api.wiring.job_store.apply(record, now=record.updated_at.timestamp())


async def test_lists_page_newest_first_without_gaps_or_repeats(
    http: httpx.AsyncClient, api: InProcessApi
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=10)
    for i in range(45):
        # Three jobs per millisecond: ties in the index's score, ordered by the cursor.
        at = start + timedelta(milliseconds=i // 3)
        status = JobStatus.FAILED if i % 5 == 0 else JobStatus.COMPLETED
        await store(
            api,
            f"j-{i:03d}",
            "alpha",
            status=status,
            submitted_at=at,
            updated_at=at,
            transcription=f"text {i}",
            metadata={"n": str(i % 2)},
        )
    await store(api, "other", "beta", status=JobStatus.COMPLETED)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "7"} | ({"cursor": cursor} if cursor else {})
        resp = await http.get("/api/v1/transcribe", params=params, headers=as_(ALPHA))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        seen += [item["request_id"] for item in body["jobs"]]
        assert all("transcription" not in item for item in body["jobs"])
        pages += 1
        cursor = body.get("next_cursor")
        if cursor is None:
            break
        # A job submitted meanwhile is newer than the cursor: it never shows on a later page.
        await store(api, f"new-{pages}", "alpha", status=JobStatus.PROCESSING)
    expected = sorted((f"j-{i:03d}" for i in range(45)), key=lambda r: (int(r[2:]) // 3, r))
    assert seen == expected[::-1]
    assert pages == 7
    failed = await http.get(
        "/api/v1/transcribe",
        params={"status": "FAILED", "include": "transcript"},
        headers=as_(ALPHA),
    )
    assert [j["request_id"] for j in failed.json()["jobs"]] == [
        f"j-{i:03d}" for i in range(40, -1, -5)
    ]
    assert failed.json()["jobs"][0]["transcription"] == "text 40"
    meta = await http.get("/api/v1/transcribe", params={"metadata.n": "1"}, headers=as_(ALPHA))
    assert all(j["metadata"] == {"n": "1"} for j in meta.json()["jobs"])
    assert len([j for j in meta.json()["jobs"] if j["request_id"].startswith("j-")]) == 22
    since = (start + timedelta(milliseconds=14)).isoformat()
    recent = await http.get("/api/v1/transcribe", params={"since": since}, headers=as_(ALPHA))
    assert {j["request_id"] for j in recent.json()["jobs"] if j["request_id"].startswith("j-")} == {
        "j-042",
        "j-043",
        "j-044",
    }
    beta = await http.get("/api/v1/transcribe", headers=as_(BETA))
    assert [j["request_id"] for j in beta.json()["jobs"]] == ["other"]
    every = await http.get("/api/v1/transcribe", params={"tenant": "*"}, headers=as_(ROOT))
    assert len(every.json()["jobs"]) == 45 + 1 + pages - 1
    refused = await http.get("/api/v1/transcribe", params={"tenant": "*"}, headers=as_(BETA))
    assert refused.status_code == 403


async def test_lists_drop_jobs_that_are_gone(http: httpx.AsyncClient, api: InProcessApi) -> None:
    await http.post("/api/v1/transcribe", json=job("gone-1"), headers=as_(BETA))
    await http.post("/api/v1/transcribe", json=job("kept-1"), headers=as_(BETA))
    await api.redis.delete(job_key("beta/gone-1"))  # as if it expired
    resp = await http.get("/api/v1/transcribe", headers=as_(BETA))
    assert [j["request_id"] for j in resp.json()["jobs"]] == ["kept-1"]
    assert await api.redis.zrange("stt:jobs:beta", 0, -1) == [b"kept-1"]
    assert 0 < await api.redis.ttl("stt:jobs:beta") <= api.wiring.settings.redis.job_ttl


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"cursor": "not-a-cursor"}, "cursor is not one this API gave out"),
        ({"metadata.a": "1", "metadata.b": "2"}, "one metadata key at a time"),
        ({"status": "DONE"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"since": "2026-12-01T00:00:00"}, "since"),
        ({"include": "everything"}, "include"),
    ],
)
async def test_bad_list_queries_are_a_422(
    http: httpx.AsyncClient, params: dict[str, str], problem: str
) -> None:
    resp = await http.get("/api/v1/transcribe", params=params, headers=as_(BARE))
    assert resp.status_code == 422
    assert problem in resp.json()["detail"]


async def test_a_page_goes_on_after_its_last_job_left_or_moved(
    http: httpx.AsyncClient, api: InProcessApi
) -> None:
    at = datetime.now(UTC) - timedelta(minutes=1)
    # Thirty jobs with one submit time: only the cursor's member orders them.
    for i in range(30):
        await store(api, f"tie-{i:02d}", "beta", status=JobStatus.COMPLETED, submitted_at=at)
    expected = [f"tie-{i:02d}" for i in range(29, -1, -1)]

    async def page(cursor: str | None) -> tuple[list[str], str | None]:
        params = {"limit": "10"} | ({"cursor": cursor} if cursor else {})
        body = (await http.get("/api/v1/transcribe", params=params, headers=as_(BETA))).json()
        return [j["request_id"] for j in body["jobs"]], body.get("next_cursor")

    first, cursor = await page(None)
    assert first == expected[:10]
    await api.redis.delete(job_key("beta/tie-20"))  # the cursor's job expired
    await api.redis.zrem("stt:jobs:beta", "tie-20")
    second, cursor = await page(cursor)
    assert second == expected[10:20]
    # The cursor's job is replayed: it moves to the top, and the next page goes on from where
    # it was, by score.
    moved = datetime.now(UTC)
    await store(
        api, "tie-10", "beta", status=JobStatus.PROCESSING, submitted_at=moved, generation=2
    )
    third, cursor = await page(cursor)
    assert third == expected[20:]
    assert await page(cursor) == ([], None)  # a full page has a cursor; the next one ends
