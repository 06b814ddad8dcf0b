"""Session-wide servers and the offline model; sub-directory conftests add their own fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stt_common.model_files import fetch_model

try:  # tests/ is a package (tests/__init__.py) ...
    from tests.infra import Infra, cache_dir, start_infra
except ImportError:  # ... or only a rootdir on sys.path
    from infra import Infra, cache_dir, start_infra  # type: ignore[no-redef]


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """Kafka, Redis and S3 for the whole session (see tests/infra.py for where they come from)."""
    with start_infra(tmp_path_factory.mktemp("infra"), cache_dir()) as servers:
        yield servers


@pytest.fixture(scope="session")
def whisper_model_dir() -> Path:
    """The verified offline Whisper base model, assembled once into the shared cache."""
    return fetch_model(cache_dir())
