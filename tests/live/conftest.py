"""Fixtures of the live tests that need the root conftest's servers (imported from there)."""

from tests.support.in_process import front  # noqa: F401 (asgi/wsgi, a shared fixture)
