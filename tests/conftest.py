"""Every async test runs on asyncio, asyncio + uvloop and trio (anyio's pytest plugin).

Test modules mark themselves with ``pytestmark = pytest.mark.anyio``; pytest fails any async test
that no plugin runs, so none can silently skip a backend.
"""

from __future__ import annotations

from typing import Any

import pytest

uvloop: Any
try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a test dependency; free-threaded builds lack it
    uvloop = None

BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(
        ("asyncio", {"loop_factory": getattr(uvloop, "new_event_loop", None)}),
        id="uvloop",
        marks=pytest.mark.skipif(uvloop is None, reason="uvloop is not installed"),
    ),
    pytest.param(("trio", {}), id="trio"),
]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param  # type: ignore[no-any-return]
