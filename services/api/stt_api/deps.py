"""What the routes use, typed: the `Annotated` dependencies of the API (as in
full-stack-fastapi-template's `api/deps.py`).

Invariant: every object here is built once per process, in `app.create_app` (the parts that need
no connection) and its lifespan (the clients), and stored as one `Wiring` on `app.state.wiring`.
Routes take what they need as parameters (`store: JobStoreDep`) and never read `app.state`
themselves; the ASGI guard (`guard.py`, a middleware, cheaper than a dependency) reads the same
`Wiring`. The dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in
its thread pool, a hop per request (measured in bench/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from stt_api.auth import DEVELOPMENT_CALLER, SCOPE_KEY, ApiKey, Caller
from stt_api.long_poll import LongPolls
from stt_api.media_store import MediaStore
from stt_api.polling import PollAdvisor
from stt_api.rate_limit import RateLimiter
from stt_api.submit_events import SubmitPublisher
from stt_api.upload_slots import UploadSlots
from stt_common.job_store import JobStore
from stt_common.settings import Settings


@dataclass(frozen=True, slots=True)
class Wiring:
    """The process's long-lived objects; the lifespan closes the ones that hold connections."""

    settings: Settings
    job_store: JobStore
    publisher: SubmitPublisher
    long_polls: LongPolls
    poll_advisor: PollAdvisor
    media_store: MediaStore
    upload_slots: UploadSlots
    rate_limiter: RateLimiter
    api_keys: list[ApiKey]  # accepted X-API-Key values; empty only in development mode
    served_model: str  # the model id the OpenAI-compatible routes name


def wiring_of(request: Request) -> Wiring:
    """The app's `Wiring` (set by the lifespan before the first request is served)."""
    wired: Wiring = request.app.state.wiring
    return wired


async def _settings(request: Request) -> Settings:
    return wiring_of(request).settings


async def _job_store(request: Request) -> JobStore:
    return wiring_of(request).job_store


async def _publisher(request: Request) -> SubmitPublisher:
    return wiring_of(request).publisher


async def _long_polls(request: Request) -> LongPolls:
    return wiring_of(request).long_polls


async def _poll_advisor(request: Request) -> PollAdvisor:
    return wiring_of(request).poll_advisor


async def _media_store(request: Request) -> MediaStore:
    return wiring_of(request).media_store


async def _upload_slots(request: Request) -> UploadSlots:
    return wiring_of(request).upload_slots


async def _wiring(request: Request) -> Wiring:
    return wiring_of(request)


async def _caller(request: Request) -> Caller:
    # Set by the guard on every route it covers.
    caller: Caller = request.scope.get(SCOPE_KEY, DEVELOPMENT_CALLER)
    return caller


SettingsDep = Annotated[Settings, Depends(_settings)]
JobStoreDep = Annotated[JobStore, Depends(_job_store)]
PublisherDep = Annotated[SubmitPublisher, Depends(_publisher)]
LongPollsDep = Annotated[LongPolls, Depends(_long_polls)]
PollAdvisorDep = Annotated[PollAdvisor, Depends(_poll_advisor)]
MediaStoreDep = Annotated[MediaStore, Depends(_media_store)]
UploadSlotsDep = Annotated[UploadSlots, Depends(_upload_slots)]
WiringDep = Annotated[Wiring, Depends(_wiring)]
CallerDep = Annotated[Caller, Depends(_caller)]
