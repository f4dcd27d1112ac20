"""Every async test runs on asyncio, asyncio + uvloop and trio (anyio's pytest plugin).

Test modules mark themselves with ``pytestmark = pytest.mark.anyio``; pytest fails any async test
that no plugin runs, so none can silently skip a backend.
"""

from __future__ import annotations

import sys
import sysconfig
from typing import Any

import pytest

# uvloop has no free-threaded build (and none for Windows), so on CPython 3.13t (``tools/dev.py
# test-ft``) its backend is skipped. Everywhere else it is required: a missing uvloop is an error,
# not a quiet skip.
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
UVLOOP_OPTIONAL = FREE_THREADED or sys.platform == "win32"

uvloop: Any
try:
    import uvloop
except ImportError:  # pragma: no cover - free-threaded builds lack uvloop
    if not UVLOOP_OPTIONAL:
        raise ImportError(
            "the uvloop test backend needs uvloop: pip install -e '.[dev]' (or '.[test,uvloop]')"
        ) from None
    uvloop = None

BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(
        ("asyncio", {"loop_factory": getattr(uvloop, "new_event_loop", None)}),
        id="uvloop",
        marks=pytest.mark.skipif(uvloop is None, reason="no uvloop build for this Python"),
    ),
    pytest.param(("trio", {}), id="trio"),
]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param  # type: ignore[no-any-return]
