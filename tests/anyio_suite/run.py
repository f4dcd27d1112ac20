"""Run anyio's own memory-object-stream tests against fearless.create_memory_object_stream.

    python tests/anyio_suite/run.py [pytest args...]

Downloads the source distribution of the installed anyio version from PyPI (anyio's code is never
committed here) once, into ``~/.cache/fearless/anyio-<version>/`` (``FEARLESS_CACHE`` moves
``~/.cache/fearless``) beside its SHA-256, and later runs use that copy without the network once
its hash still matches. It takes ``tests/streams/test_memory.py``, swaps anyio's factory and
stream classes for fearless's, and runs it on asyncio, asyncio + uvloop and trio. Tests of
anyio's private names are deselected; they are listed in ``PRIVATE`` with the reason.

Exit status is pytest's. The last line says how many tests passed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

PRIVATE = {
    # Builds anyio's private _MemoryObjectItemReceiver dataclass and checks its repr.
    "test_memory_object_item_receiver_repr": "tests anyio's private _MemoryObjectItemReceiver",
}

CONFTEST = """
import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

asyncio_params = [
    pytest.param(("asyncio", {"debug": True}), id="asyncio"),
    pytest.param(
        ("asyncio", {"debug": True, "loop_factory": getattr(uvloop, "new_event_loop", None)}),
        id="asyncio+uvloop",
        marks=[pytest.mark.skipif(uvloop is None, reason="uvloop not installed")],
    ),
]


@pytest.fixture(params=[*asyncio_params, pytest.param(("trio", {}), id="trio")])
def anyio_backend(request):
    return request.param


@pytest.fixture(autouse=True)
def _really_fearless(request):
    factory = request.module.create_memory_object_stream
    assert factory.__module__.startswith("fearless."), factory
"""

PYTEST_INI = """
[pytest]
anyio_mode = auto
timeout = 20
xfail_strict = true
filterwarnings = error
addopts = -p anyio -p timeout -p no:cacheprovider -rfE --tb=short
"""


def cache_dir() -> Path:
    return Path(os.environ.get("FEARLESS_CACHE", Path.home() / ".cache" / "fearless"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cached_sdist(anyio_version: str) -> Path | None:
    """The cached sdist of this anyio version, if it is there whole: its bytes still hash to the
    SHA-256 written beside it when pip downloaded it (pip checked it against the index then)."""
    entry = cache_dir() / f"anyio-{anyio_version}"
    digest = entry / "sha256"
    sdists = list(entry.glob("anyio-*.tar.gz"))
    if not digest.is_file() or len(sdists) != 1:
        return None
    if sha256(sdists[0]) != digest.read_text().strip():
        print(f"the cached {sdists[0].name} does not match its SHA-256: downloading it again")
        return None
    return sdists[0]


def download_sdist(anyio_version: str) -> Path:
    """Download the sdist with pip into a fresh directory, then move it into the cache whole (the
    hash file is written last, so an interrupted run leaves nothing that looks cached)."""
    entry = cache_dir() / f"anyio-{anyio_version}"
    entry.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{entry.name}.", dir=entry.parent) as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
            ":all:", "--disable-pip-version-check", f"anyio=={anyio_version}", "-d", tmp,
        ]  # fmt: skip
        for attempt in range(3):  # a registry hiccup should not fail the whole test run
            if subprocess.run(command, check=False).returncode == 0:
                break
            time.sleep(2 * (attempt + 1))
        else:
            raise SystemExit(f"could not download the anyio {anyio_version} sdist from PyPI")
        (sdist,) = Path(tmp).glob("anyio-*.tar.gz")
        shutil.rmtree(entry, ignore_errors=True)
        entry.mkdir()
        target = entry / sdist.name
        shutil.move(sdist, target)
    (entry / "sha256").write_text(sha256(target) + "\n")
    return target


def fetch_test_module() -> str:
    anyio_version = version("anyio")
    sdist = cached_sdist(anyio_version)
    if sdist is None:
        sdist = download_sdist(anyio_version)
    else:
        print(f"anyio {anyio_version}'s sdist, from the cache: {sdist}", flush=True)
    with tarfile.open(sdist) as tar:
        member = next(
            m for m in tar.getmembers() if m.name.endswith("tests/streams/test_memory.py")
        )
        extracted = tar.extractfile(member)
        assert extracted is not None
        return extracted.read().decode()


def swap_in_fearless(source: str) -> str:
    """Point the module at fearless; fail loudly if anyio's file no longer looks as expected."""
    imports = re.compile(r"from anyio\.streams\.memory import \((.*?)\)\n", re.S)
    if not imports.search(source) or "    create_memory_object_stream,\n" not in source:
        raise SystemExit("anyio's test_memory.py changed shape; update tests/anyio_suite/run.py")
    source = imports.sub(
        "from fearless import MemoryObjectReceiveStream, MemoryObjectSendStream\n", source
    )
    source = source.replace("    create_memory_object_stream,\n", "")
    source = source.replace(
        "from anyio import (",
        "from fearless import create_memory_object_stream\nfrom anyio import (",
    )
    return source


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="fearless-anyio-suite-") as tmp:
        root = Path(tmp)
        tests = root / "tests"
        (tests / "streams").mkdir(parents=True)
        (tests / "__init__.py").write_text("")
        (tests / "streams" / "__init__.py").write_text("")
        (tests / "conftest.py").write_text(CONFTEST)
        (root / "pytest.ini").write_text(PYTEST_INI)
        source = swap_in_fearless(fetch_test_module())
        (tests / "streams" / "test_memory.py").write_text(source)
        deselect = " or ".join(PRIVATE)
        print(f"deselected (anyio private names): {', '.join(PRIVATE)}", flush=True)
        return subprocess.call(
            [sys.executable, "-m", "pytest", "-c", str(root / "pytest.ini"), "--rootdir", tmp,
             "-k", f"not ({deselect})", str(tests), *argv],
            cwd=tmp,
        )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
