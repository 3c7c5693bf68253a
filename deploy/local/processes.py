"""Start, watch and stop local processes: each in its own process group, logs to a file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ReadyCheck = Callable[[], bool]


@dataclass
class ProcessSpec:
    """What to run and how to tell it is ready."""

    name: str
    argv: list[str]
    ready: ReadyCheck
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ready_timeout_s: float = 60.0
    url: str = ""


@dataclass
class RunningProcess:
    """A started process and where its output goes."""

    spec: ProcessSpec
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None


class StartupError(RuntimeError):
    """A process exited or did not become ready in time; the message says which and why."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout_s: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def start(spec: ProcessSpec, log_dir: Path) -> RunningProcess:
    """Start ``spec`` in a new session (so its whole group can be signalled) with a log file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.name}.log"
    env = {**os.environ, **spec.env}
    with open(log_path, "ab") as log_file:
        popen = subprocess.Popen(
            spec.argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=spec.cwd,
            start_new_session=True,
        )
    return RunningProcess(spec, popen, log_path)


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_ready(proc: RunningProcess, poll_s: float = 0.1) -> None:
    """Block until the process reports ready; raise StartupError if it dies or times out."""
    deadline = time.monotonic() + proc.spec.ready_timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StartupError(
                f"{proc.spec.name} exited with code {proc.popen.returncode}; "
                f"log {proc.log_path}:\n{tail(proc.log_path)}"
            )
        if proc.spec.ready():
            return
        time.sleep(poll_s)
    raise StartupError(
        f"{proc.spec.name} not ready after {proc.spec.ready_timeout_s:.0f}s; "
        f"log {proc.log_path}:\n{tail(proc.log_path)}"
    )


def stop_group(pid: int, timeout_s: float = 10.0) -> None:
    """SIGTERM a process group, then SIGKILL whatever is left after ``timeout_s``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not group_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists (zombies of our own children are reaped)."""
    try:
        os.waitpid(-pgid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _group_has_live_member(pgid)


def _group_has_live_member(pgid: int) -> bool:
    """killpg(0) succeeds for zombies; look in /proc for a member that is not one."""
    proc = Path("/proc")
    if not proc.exists():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the ")" of the command name: state ppid pgrp ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop(proc: RunningProcess, timeout_s: float = 10.0) -> None:
    """Stop a process we started, and reap it."""
    stop_group(proc.pid, timeout_s)
    try:
        proc.popen.wait(timeout=1)
    except subprocess.TimeoutExpired:
        proc.popen.kill()
        proc.popen.wait()


@contextmanager
def running(spec: ProcessSpec, log_dir: Path) -> Iterator[RunningProcess]:
    """Start a process, wait until ready, and always stop it afterwards."""
    proc = start(spec, log_dir)
    try:
        wait_ready(proc)
        yield proc
    finally:
        stop(proc)
