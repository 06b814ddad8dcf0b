"""schemathesis against the running API's own /openapi.json: no 5xx, every answer as documented.

Bounded: a few dozen generated requests per operation, positive and negative, against a real
API process (Redis, Kafka) with the rate limit off so that 429s do not hide anything.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from stt_testing import processes

pytestmark = pytest.mark.infra
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def api_env(infra: Any) -> dict[str, str]:
    """Overrides the package's: this module's API runs without the rate limit, and the OpenAI
    routes wait for no transcriber (there is none): a valid form is answered 504 at once."""
    prefix = "fuzz" + uuid.uuid4().hex[:6]
    # "bucket" is allowed so that the minio:// URL below is accepted (202), not refused (422).
    return processes.service_env(
        infra.env(),
        prefix=prefix,
        STT_RATE_LIMIT_PER_MINUTE="0",
        MINIO_ALLOWED_BUCKETS="bucket",
        STT_OPENAI_WAIT_SECONDS="0.1",
    )


# The schema cannot express the URL and language rules, so positive bodies get real ones
# (otherwise every one would be a 422 and the 202 answer would go unchecked).
URLS = ["http://media.example.com/a.mp3", "https://h.example/x?sig=1", "minio://bucket/k.wav"]


@st.composite
def plausible(draw: st.DrawFn, operation: Any, mode: GenerationMode) -> Any:
    case = draw(operation.as_strategy(generation_mode=mode))
    if mode is GenerationMode.POSITIVE and isinstance(case.body, dict) and "media_url" in case.body:
        case.body["media_url"] = draw(st.sampled_from(URLS))
        case.body["language"] = draw(st.sampled_from(["auto", "vi", "en"]))
    return case


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_api_matches_its_own_schema(api: processes.Api, mode: GenerationMode) -> None:
    # Loaded at run time from the process itself (schemathesis' pytest fixture loader does not
    # work with this pytest), one hypothesis run per operation.
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=plausible(operation, mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same requests every run: a failure here is reproducible
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            # With no transcriber, a valid OpenAI form ends in the documented 504 (the wait
            # bound); any other 5xx is still a failure.
            waits = case.operation.path.startswith("/v1/audio/")
            checks = [response_schema_conformance]
            response = case.call_and_validate(
                base_url=api.url,
                headers={"X-API-Key": processes.API_KEY},
                checks=checks if waits else [not_a_server_error, *checks],
                timeout=10,
            )
            assert not waits or response.status_code < 500 or response.status_code == 504, (
                f"{response.status_code}: {response.text[:500]}"
            )

        try:
            run()
        except Unsatisfiable:
            pass  # nothing to make invalid (no parameters, no body): negative mode has no case
        except Exception as exc:  # every operation is tried; all failures reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 3
    assert not failures, "\n\n".join(failures)
