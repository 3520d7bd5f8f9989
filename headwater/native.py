"""Compiled builds of a few pure-Python hot paths, used only while they match their source.

The ad hoc SQL validator (``catalog/queries``) runs its own Python over every node and
token of a query seen for the first time, and that loop costs as much as a third of
parsing it. ``make install`` compiles those modules with mypyc — the compiler sqlglot's
own parser ships built with — into C extension modules beside their sources, which
Python then imports instead of the ``.py`` files. The code is the same; only the
interpreter's overhead goes.

A compiled module must never run code older than its source. The build records the
SHA-256 of each source it compiled, and the Python and sqlglot it was built against;
:func:`use_current_code` (called by the package before any module of the group is
imported) loads the whole group from source when a source or one of those versions
changed since, when part of the build is missing, or when ``HEADWATER_NATIVE=0``.
Without a C compiler the build is skipped and everything runs as plain Python.

    uv run python -m headwater.native    # build, or say the build is current
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

STAMP = "native.json"  # beside the sources: what was compiled, from which source


@dataclass(frozen=True)
class Group:
    """Modules of one package compiled together, each listed after those it imports, and
    the packages whose version the build depends on (a new version: rebuild first)."""

    package: str
    modules: tuple[str, ...]
    depends_on: tuple[str, ...] = ()

    def directory(self, root: Path) -> Path:
        return root.joinpath(*self.package.split("."))


GROUPS = (Group("catalog.queries", ("splice", "resolve", "validate"), depends_on=("sqlglot",)),)
ROOT = Path(__file__).resolve().parent.parent


def _suffix() -> str:
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    return str(suffix) if suffix else importlib.machinery.EXTENSION_SUFFIXES[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sources(group: Group, directory: Path) -> dict[str, str]:
    return {name: _digest(directory / f"{name}.py") for name in group.modules}


def _environment(group: Group) -> dict[str, str]:
    """The Python and the versions of the packages the build was made against."""
    versions = {"python": sys.version}
    for name in group.depends_on:
        versions[name] = str(getattr(importlib.import_module(name), "__version__", "?"))
    return versions


def is_current(group: Group, directory: Path) -> bool:
    """Whether every module of ``group`` is built, from the source now beside it, for the
    Python and the packages installed now."""
    try:
        stamp = json.loads((directory / STAMP).read_text())
        built = {name: str(value) for name, value in stamp["sources"].items()}
        environment = {name: str(value) for name, value in stamp["environment"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    suffix = _suffix()
    built_files = [*group.modules, "native__mypyc"]  # the modules, and the group's library
    return (
        all((directory / f"{name}{suffix}").is_file() for name in built_files)
        and built == _sources(group, directory)
        and environment == _environment(group)
    )


def use_current_code(package: ModuleType, group: Group | None = None) -> bool:
    """Make the modules of ``package``'s group run their current source; call it from the
    package's ``__init__`` before importing any of them. True when the compiled build
    runs, False when the sources do (and then they are imported from their ``.py``)."""
    group = group or next(g for g in GROUPS if g.package == package.__name__)
    directory = Path(package.__path__[0])
    wanted = os.environ.get("HEADWATER_NATIVE", "1") not in ("0", "false", "no")
    if wanted and is_current(group, directory):
        return True
    if not any((directory / f"{name}{_suffix()}").exists() for name in group.modules):
        return False  # nothing built: the import system finds the sources
    for name in group.modules:  # each before the modules that import it
        setattr(package, name, load_source(f"{group.package}.{name}", directory))
    return False


def load_source(qualified: str, directory: Path) -> ModuleType:
    """Import module ``qualified`` from its ``.py`` in ``directory`` (not a compiled build
    beside it), registered under its name."""
    path = directory / f"{qualified.rsplit('.', 1)[-1]}.py"
    spec = importlib.util.spec_from_file_location(qualified, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py always has a loader
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[qualified]
        raise
    return module


def source_twin(module: ModuleType) -> ModuleType:
    """A second copy of ``module`` run from its ``.py``, the imported one left in place:
    tests compare a compiled module with its source, and patch functions the compiled
    code would call directly."""
    qualified = module.__name__
    package = sys.modules[qualified.rsplit(".", 1)[0]]
    try:
        return load_source(qualified, Path(package.__path__[0]))
    finally:
        sys.modules[qualified] = module


def build(group: Group, root: Path = ROOT, *, force: bool = False) -> bool:
    """Compile ``group`` in place with mypyc unless its build is current. False (with the
    reason on stderr) when it cannot be built here; the sources then run as they are."""
    directory = group.directory(root)
    if not force and is_current(group, directory):
        return True
    if shutil.which(os.environ.get("CC", "cc")) is None:
        print("headwater.native: no C compiler (cc); running pure Python", file=sys.stderr)
        return False
    for stale in [directory / STAMP, *directory.glob(f"*{_suffix()}")]:
        stale.unlink(missing_ok=True)
    from mypyc.build import mypycify  # a development tool: imported only to build
    from setuptools import setup  # type: ignore[import-untyped]

    sources, environment = _sources(group, directory), _environment(group)
    relative = [str((directory / f"{name}.py").relative_to(root)) for name in group.modules]
    here = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="headwater-native-") as scratch:
        os.chdir(root)  # mypyc names each module by its path from the project root
        try:
            extensions = mypycify(
                relative, group_name=f"{group.package}.native", target_dir=scratch
            )
            setup(
                name=f"{group.package}-native",
                packages=[],
                py_modules=[],
                ext_modules=extensions,
                script_args=[
                    "--quiet",
                    "build_ext",
                    "--inplace",
                    "--build-temp",
                    scratch,
                    "--build-lib",
                    scratch,
                ],
            )
        finally:
            os.chdir(here)
    stamp = {"sources": sources, "environment": environment}
    (directory / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Build every group that is not current; 1 when one failed to compile (its sources
    still run), 0 otherwise."""
    force = "--force" in (argv if argv is not None else sys.argv[1:])
    failed = 0
    for group in GROUPS:
        directory = group.directory(ROOT)
        if is_current(group, directory) and not force:
            print(f"headwater.native: {group.package} is built and current")
            continue
        try:
            built = build(group, force=force)
        except (Exception, SystemExit) as exc:  # setuptools exits on a compiler error
            for partial in [directory / STAMP, *directory.glob(f"*{_suffix()}")]:
                partial.unlink(missing_ok=True)
            print(
                f"headwater.native: {group.package} did not compile ({exc}); running pure Python",
                file=sys.stderr,
            )
            failed = 1
            continue
        if built:
            print(f"headwater.native: compiled {group.package} ({', '.join(group.modules)})")
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
