"""A real Dagster for tests and benchmarks: webserver (and daemon) over a Headwater home.

``dagster_services(home, env)`` starts ``dagster dev`` (webserver and daemon: schedules,
sensors, the run queue) on a free port, or the webserver alone, loading
the project's ``workspace.yaml`` with ``DAGSTER_HOME`` inside the home; it yields the
webserver's URL once it answers, and stops both (their process groups) on exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from benchmarks.api import free_port

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 20.0


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


def _tail(log: Path, lines: int = 60) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def dagster_services(home: Path, env: Mapping[str, str], *, daemon: bool = True) -> Iterator[str]:
    """The URL of a Dagster webserver (plus daemon) over ``home``, until exit."""
    from orchestration.runs import write_instance_config

    dagster_home = home / "dagster"
    write_instance_config(dagster_home)
    bin_dir = Path(sys.executable).parent
    port = free_port()
    full_env = {**env, "DAGSTER_HOME": str(dagster_home), "HEADWATER_HOME": str(home)}
    workspace = str(ROOT / "workspace.yaml")
    # `dagster dev`, as `headwater up` runs it: webserver and daemon share one code
    # server, so a reload through the webserver reaches the schedules at once.
    commands = {
        "dev": [
            str(bin_dir / "dagster"),
            "dev",
            "-w",
            workspace,
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ]
    }
    if not daemon:
        commands = {
            "webserver": [
                str(bin_dir / "dagster-webserver"),
                "-w",
                workspace,
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ]
        }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: home / f"dagster-{name}.log" for name in commands}
    try:
        for name, command in commands.items():
            with logs[name].open("wb") as handle:
                processes[name] = subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=full_env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"dagster {name} exited:\n{_tail(logs[name])}")
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):  # noqa: S310
                    break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Dagster did not answer within {STARTUP_TIMEOUT_SECONDS:g} s:\n"
                        + _tail(next(iter(logs.values())))
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        for process in processes.values():
            _stop(process)
