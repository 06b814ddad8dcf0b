"""The OpenAPI document the running API serves says what the API enforces (issue 12, item 8)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stt_common.messages import MAX_URL_LENGTH
from stt_testing import processes

pytestmark = pytest.mark.infra
SUBMIT = "/api/v1/transcribe"


@pytest.fixture
async def schema(client: httpx.AsyncClient) -> dict[str, Any]:
    document: dict[str, Any] = (await client.get("/openapi.json")).json()
    return document


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = document["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


async def test_an_empty_media_url_is_refused_by_the_schema_too(
    schema: dict[str, Any], client: httpx.AsyncClient
) -> None:
    body = schema["paths"][SUBMIT]["post"]["requestBody"]["content"]["application/json"]
    fields = resolve(schema, body["schema"])["properties"]
    assert fields["media_url"]["minLength"] == 1
    assert fields["media_url"]["maxLength"] == MAX_URL_LENGTH
    refused = await client.post(SUBMIT, json={"request_id": "x1", "media_url": ""})
    assert refused.status_code == 422  # what the schema now says


async def test_the_upload_body_is_required_and_not_empty(
    schema: dict[str, Any], client: httpx.AsyncClient
) -> None:
    body = schema["paths"]["/api/v1/uploads"]["post"]["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"application/octet-stream", "audio/*", "video/*"}
    assert {c["schema"]["minLength"] for c in body["content"].values()} == {1}
    empty = await client.post(
        "/api/v1/uploads", content=b"", headers={"Content-Type": "application/octet-stream"}
    )
    assert empty.status_code == 400


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        (f"{SUBMIT}/some-id", {"GET", "HEAD", "DELETE", "OPTIONS"}),
        (SUBMIT, {"GET", "HEAD", "POST", "OPTIONS"}),  # GET: the job list
        ("/api/v1/uploads", {"POST", "OPTIONS"}),
    ],
)
async def test_options_and_405_list_every_method_of_the_path(
    client: httpx.AsyncClient, schema: dict[str, Any], path: str, methods: set[str]
) -> None:
    options = await client.options(path)
    assert options.status_code == 204
    assert set(options.headers["allow"].split(", ")) == methods
    wrong = await client.put(path, json={})
    assert wrong.status_code == 405 and wrong.json()["detail"]
    assert set(wrong.headers["allow"].split(", ")) == methods
    documented = {m.upper() for m in schema["paths"][path.replace("some-id", "{request_id}")]}
    assert documented <= methods


async def test_options_needs_the_key_like_any_api_request(api: processes.Api) -> None:
    assert httpx.options(f"{api.url}{SUBMIT}/x", timeout=10).status_code == 401
