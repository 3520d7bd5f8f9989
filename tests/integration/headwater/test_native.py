"""headwater/native.py with the real compiler: a small package compiled by mypyc runs
compiled while its sources are unchanged, and from source once one changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from headwater.native import ROOT, Group, build, is_current

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler"),
]

GROUP = Group("nativepkg", ("base", "top"))
INIT = """
import sys
from headwater.native import Group, use_current_code  # type: ignore
COMPILED = use_current_code(sys.modules[__name__], Group("nativepkg", ("base", "top")))
"""
BASE = "def answer() -> int:\n    return {}\n"
TOP = "from nativepkg.base import answer\n\n\ndef result() -> int:\n    return answer() + 1\n"
PROBE = """
import json, nativepkg, nativepkg.top as top
print(json.dumps([nativepkg.COMPILED, top.__file__.endswith(".py"), top.result()]))
"""


def probe(root: Path, **env: str) -> list[object]:
    """Import the package in a fresh interpreter: [compiled, top from .py, top.result()]."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{ROOT}", **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    answer: list[object] = json.loads(done.stdout)
    return answer


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("native")
    directory = root / "nativepkg"
    directory.mkdir()
    (directory / "__init__.py").write_text(INIT)
    (directory / "base.py").write_text(BASE.format(41))
    (directory / "top.py").write_text(TOP)
    assert build(GROUP, root)
    return root


def test_a_built_group_runs_compiled(package: Path) -> None:
    assert is_current(GROUP, package / "nativepkg")
    assert probe(package) == [True, False, 42]


def test_a_changed_source_runs_the_whole_group_from_source(package: Path) -> None:
    """``top`` is unchanged, but its build calls the old ``base`` directly: it must not run."""
    base = package / "nativepkg" / "base.py"
    base.write_text(BASE.format(1))
    try:
        assert not is_current(GROUP, package / "nativepkg")
        assert probe(package) == [False, True, 2]
    finally:
        base.write_text(BASE.format(41))
    assert probe(package) == [True, False, 42]


def test_headwater_native_0_runs_the_sources(package: Path) -> None:
    assert probe(package, HEADWATER_NATIVE="0") == [False, True, 42]


def test_a_build_without_a_stamp_is_not_used(package: Path) -> None:
    stamp = package / "nativepkg" / "native.json"
    kept = stamp.read_text()
    stamp.unlink()
    try:
        assert probe(package) == [False, True, 42]
    finally:
        stamp.write_text(kept)


def test_a_current_build_is_not_rebuilt(package: Path) -> None:
    library = next((package / "nativepkg").glob("native__mypyc.*"))
    before = library.stat().st_mtime_ns
    assert build(GROUP, package)
    assert library.stat().st_mtime_ns == before


def test_a_build_for_another_python_or_sqlglot_is_not_used(package: Path) -> None:
    stamp = package / "nativepkg" / "native.json"
    kept = stamp.read_text()
    recorded = json.loads(kept)
    recorded["environment"]["python"] = "3.11.0 (another build)"
    stamp.write_text(json.dumps(recorded))
    try:
        assert probe(package) == [False, True, 42]
    finally:
        stamp.write_text(kept)
    assert probe(package) == [True, False, 42]
