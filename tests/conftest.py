"""Shared fixtures for the whole suite.

Async tests use anyio's pytest plugin: mark them ``@pytest.mark.anyio``.
"""

from collections.abc import AsyncIterator

import httpx
import pytest

from app.main import app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client for the FastAPI app (no server, no sockets)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
