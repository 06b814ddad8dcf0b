"""`GET /api/v1/transcribe`: a page of the caller's jobs, and whose jobs a request may name.

The list reads the tenant's index in Redis (`JobStore.list_jobs`); filters (status, metadata)
are applied to the records read, so a page may hold fewer than `limit` jobs and still have a
next page. The cursor is opaque to clients.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Final, Literal, NoReturn

from fastapi import HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime

from stt_api.auth import Caller
from stt_common import tenants
from stt_common.job_index import Cursor
from stt_common.job_store import JobStore
from stt_common.messages import METADATA_KEY_PATTERN, JobList, JobRecord, JobResponse, JobStatus

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
EVERY_TENANT: Final = "*"
METADATA_PREFIX: Final = "metadata."
TRANSCRIPT_FIELDS: Final = frozenset({"transcription", "segments", "removed_segments"})

Include = Literal["transcript"]
Since = AwareDatetime
TenantQuery = Annotated[
    str | None,
    Query(
        max_length=32,
        description="Admin keys only: the tenant whose jobs to read (`*`: every tenant, lists)",
    ),
]
METADATA_PARAMETER: Final[dict[str, Any]] = {
    "name": "metadata.{key}",
    "in": "query",
    "required": False,
    "description": "Only jobs whose metadata has this key with this value, as "
    "`metadata.post_id=123` (one key per request)",
    "schema": {"type": "string"},
}


def owner(caller: Caller, tenant: str | None) -> str:
    """The tenant a request reads: the caller's own, or with an admin key the one it names."""
    if tenant is None or tenant == caller.tenant:
        return caller.tenant
    if not caller.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "tenant= needs an admin API key")
    if not re.match(tenants.PATTERN, tenant):
        _invalid("tenant", "tenant must be 1-32 characters of a-z, 0-9, _ and -")
    return tenant


def metadata_filter(params: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """The one `metadata.KEY=VALUE` query parameter, if any."""
    found = [(k[len(METADATA_PREFIX) :], v) for k, v in params if k.startswith(METADATA_PREFIX)]
    if len(found) > 1:
        _invalid("metadata", "filter on one metadata key at a time (metadata.KEY=VALUE)")
    if found and not re.match(METADATA_KEY_PATTERN, found[0][0]):
        _invalid("metadata", "metadata key must be 1-64 characters of letters, digits and . _ -")
    return found[0] if found else None


async def page(
    store: JobStore,
    caller: Caller,
    *,
    tenant: str | None,
    status: JobStatus | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
    metadata: tuple[str, str] | None,
    transcript: bool,
) -> JobList:
    every = tenant == EVERY_TENANT
    if every and not caller.admin:
        owner(caller, tenant)  # raises the 403
    listed = None if every else owner(caller, tenant)
    after = None
    if cursor is not None:
        try:
            after = Cursor.decode(cursor)
        except ValueError as exc:
            _invalid("cursor", str(exc))

    def accept(record: JobRecord) -> bool:
        if status is not None and record.status is not status:
            return False
        if metadata is not None:
            key, value = metadata
            return (record.metadata or {}).get(key) == value
        return True

    filtered = status is not None or metadata is not None
    found = await store.list_jobs(
        listed, since=since, after=after, limit=limit, accept=accept if filtered else None
    )
    items = []
    for record in found.records:
        item = JobResponse.from_record(record)
        item.submitted_at = record.submitted_at
        if not transcript:
            for name in TRANSCRIPT_FIELDS:
                setattr(item, name, None)
        items.append(item)
    next_cursor = found.next_cursor.encode() if found.next_cursor is not None else None
    return JobList(jobs=items, next_cursor=next_cursor)


def _invalid(field: str, message: str) -> NoReturn:
    """A 422 like any other query rule."""
    raise RequestValidationError([{"loc": ("query", field), "msg": message, "type": "value_error"}])
