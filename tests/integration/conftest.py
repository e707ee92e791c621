"""Fixtures shared by the integration tests (defined in ``tests.support``, exposed here)."""

from tests.support.api_server import api, database_url, repo, start_api  # noqa: F401
from tests.support.service import start_service  # noqa: F401
