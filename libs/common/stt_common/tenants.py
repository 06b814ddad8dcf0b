"""Tenants: who a job belongs to, and the one id under which it is stored.

A tenant is named by the API key that submitted the job (`tenant:key` in STT_API_KEYS) or by the
`tenant` field of an event published straight to Kafka. A job's *job id* scopes its
`request_id` by tenant; it names the job's Redis key, its status-topic key, its cancellation
marker and its webhook mark.

Invariants:
* the `default` tenant's job id is the bare `request_id`, so every key that existed before
  tenants (Redis, the compacted status topic) is unchanged and needs no migration;
* any other tenant's job id is `tenant/request_id`; `/` is in neither a tenant name nor a
  `request_id`, so a job id splits back into exactly one (tenant, request_id).
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field, StringConstraints

DEFAULT: Final = "default"
SEPARATOR: Final = "/"
PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,31}$"

TenantName = Annotated[
    str,
    StringConstraints(pattern=PATTERN),
    Field(
        description="The tenant the job belongs to: 1-32 characters of a-z, 0-9, _ and -, "
        "starting with a letter or digit; absent = `default`",
        examples=["crawler"],
    ),
]


def name_of(tenant: str | None) -> str:
    """The tenant an optional field names (absent = `default`)."""
    return tenant or DEFAULT


def as_field(tenant: str) -> str | None:
    """The value of an event's or record's `tenant` field: absent for `default`, so that the
    default tenant's events and records are exactly what they were before tenants."""
    return None if tenant == DEFAULT else tenant


def job_id(tenant: str | None, request_id: str) -> str:
    """The id a job is stored under (see the module docstring)."""
    owner = name_of(tenant)
    return request_id if owner == DEFAULT else f"{owner}{SEPARATOR}{request_id}"


def split_job_id(scoped: str) -> tuple[str, str]:
    """(tenant, request_id) of a job id."""
    tenant, sep, request_id = scoped.partition(SEPARATOR)
    return (tenant, request_id) if sep else (DEFAULT, scoped)


ADMIN_SUFFIX: Final = ":admin"


def split_key_entry(entry: str) -> tuple[str | None, str, bool]:
    """(tenant or None for a bare key, the key, admin) of an STT_API_KEYS entry: `key`,
    `tenant:key` or `tenant:key:admin`. The key is everything after the first `:` (less a final
    `:admin`), so a key may itself hold colons when its tenant is written: `default:a:b`."""
    entry = entry.strip()
    admin = entry.endswith(ADMIN_SUFFIX) and entry.count(":") >= 2
    body = entry[: -len(ADMIN_SUFFIX)] if admin else entry
    tenant, sep, key = body.partition(":")
    return (tenant, key, admin) if sep else (None, body, False)


def key_of_entry(entry: str) -> str:
    """The value a client sends as X-API-Key for an STT_API_KEYS entry: the key itself."""
    return split_key_entry(entry)[1]
