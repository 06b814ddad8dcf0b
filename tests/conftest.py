"""Session-wide servers and the offline model; sub-directory conftests add their own fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stt_common.model_files import fetch_model
from stt_testing.infra import Infra, cache_dir, start_infra

# Fixtures that make a test need more than this process (markers added at collection, so that
# `make test-fast`, which deselects them, can't run a test that would start a server or the model).
NEEDS_SERVERS = frozenset({"infra", "sasl_broker"})
NEEDS_MODEL = frozenset({"whisper_model_dir", "whisper_engine"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & NEEDS_SERVERS:
            item.add_marker(pytest.mark.infra)
        if used & NEEDS_MODEL:
            item.add_marker(pytest.mark.model)


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """Kafka, Redis and S3 for the whole session (see stt_testing.infra)."""
    with start_infra(tmp_path_factory.mktemp("infra"), cache_dir()) as servers:
        yield servers


@pytest.fixture(scope="session")
def whisper_model_dir() -> Path:
    """The verified offline Whisper base model, assembled once into the shared cache."""
    return fetch_model(cache_dir())
