"""The client runs against the API alone (`api`, jobs stay PROCESSING) and the whole stack."""

from __future__ import annotations

from tests.api.conftest import api, api_env  # noqa: F401
from tests.e2e.conftest import clips, stack, stack_env  # noqa: F401
