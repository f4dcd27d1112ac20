"""examples/select_loop.py serves every reading and alert once, on every backend."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "select_loop.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("select_loop_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def test_the_select_loop_serves_every_input_and_stops_on_shutdown() -> None:
    """Every reading the sensor managed to send was served (none lost at shutdown), every alert
    was served in order, and the loop stopped because of the shutdown signal."""
    report, sent = await load().run(300)
    assert report.stopped_by == "shutdown"
    assert report.readings == sent > 0
    assert report.alerts == [f"check the sensor (alert {i})" for i in range(3)]
    assert report.hottest == max(20.0 + (i * 7919 % 1000) / 100 for i in range(sent))
