"""docker-compose.yml against the Compose Specification's JSON Schema (the copy vendored by
`check-jsonschema`, offline), plus what scaling needs; deploy/docker/Dockerfile linted."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


def test_compose_file_matches_the_compose_spec(compose: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(compose_schema())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_compose_schema_catches_a_mistake(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["ports"] = {"8000": 8000}
    assert not jsonschema.Draft202012Validator(compose_schema()).is_valid(broken)


def test_compose_has_every_service_and_waits_for_healthy_servers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "redis", "minio", "api", "projector", "transcriber"} <= services.keys()
    for server in ("kafka", "redis", "minio"):
        assert services[server]["healthcheck"]["test"], server
    for role in ("api", "projector", "transcriber"):
        needs = services[role]["depends_on"]
        assert all(needs[s]["condition"] == "service_healthy" for s in ("kafka", "redis", "minio"))
        assert services[role]["command"] == [role]


def test_transcriber_can_be_scaled(compose: dict[str, Any]) -> None:
    """`docker compose up --scale transcriber=N` needs no fixed name and no host port."""
    transcriber = compose["services"]["transcriber"]
    assert "container_name" not in transcriber
    assert "ports" not in transcriber
    assert transcriber.get("stop_grace_period")


def dockerfile_lines() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def instructions(name: str) -> list[str]:
    return [
        line.split(None, 1)[1] for line in dockerfile_lines() if line.upper().startswith(name + " ")
    ]


def final_stage() -> list[str]:
    lines = dockerfile_lines()
    start = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[start:]


def test_base_images_are_pinned_not_latest() -> None:
    for base in instructions("FROM"):
        image = base.split()[0]
        if image.startswith("--platform"):
            image = base.split()[1]
        assert ":" in image or "@sha256:" in image, f"{image} has no tag"
        assert not image.endswith(":latest"), image


def test_runs_as_a_non_root_user_created_with_a_fixed_uid() -> None:
    users = [line.split(None, 1)[1] for line in final_stage() if line.upper().startswith("USER ")]
    assert users, "the final stage never switches user"
    assert users[-1] not in ("root", "0", "0:0")
    created = re.search(r"useradd .*?--uid (\d+)", " ".join(final_stage()))
    assert created and int(created.group(1)) >= 1000
    assert users[-1] in ("stt", created.group(1))


def test_healthcheck_and_exec_form_entrypoint() -> None:
    assert any(line.upper().startswith("HEALTHCHECK ") for line in final_stage())
    (entrypoint,) = instructions("ENTRYPOINT")
    assert entrypoint.startswith("["), "ENTRYPOINT in shell form does not forward SIGTERM"
    assert not any(line.upper().startswith("ADD ") for line in dockerfile_lines())


def test_compose_runs_the_webhook_sender_with_a_secret(compose: dict[str, Any]) -> None:
    webhooks = compose["services"]["webhooks"]
    assert webhooks["command"] == ["webhooks"]
    assert "STT_WEBHOOK_SECRET" in webhooks["environment"]
    assert all(
        webhooks["depends_on"][s]["condition"] == "service_healthy" for s in ("kafka", "redis")
    )
