"""A server process that is started, checked for readiness and stopped by its PID.

Every process of the local control plane runs in its own process group, writes
its output to a log file, and is ended by the PID it was started with: first
SIGTERM, then SIGKILL after a grace period. Nothing is ever looked up or
killed by name, so processes that belong to someone else are never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class ProcessError(RuntimeError):
    """A control-plane process failed to start or become ready."""


def free_port() -> int:
    """Return a TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free ports, holding each open until all are chosen."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind((LOOPBACK, 0))
            sockets.append(probe)
        return [int(probe.getsockname()[1]) for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


class ManagedProcess:
    """One server process with its log file."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self.environment = dict(environment) if environment is not None else None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Return the PID of the running process, or None when it is not running."""
        return self._process.pid if self._process and self._process.poll() is None else None

    def start(self) -> None:
        """Start the process in a new session so its whole group can be signalled."""
        if self.pid is not None:
            raise ProcessError(f"{self.name} is already running as PID {self.pid}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.environment} if self.environment is not None else None,
                start_new_session=True,
            )
        logger.debug(
            "Started %s as PID %d: %s", self.name, self._process.pid, " ".join(self.command)
        )

    def wait_ready(self, check: Callable[[], bool], timeout: float) -> None:
        """Poll ``check`` until it returns True; raise ProcessError on exit or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                code = self._process.returncode if self._process else None
                raise ProcessError(
                    f"{self.name} exited with status {code} before it was ready; "
                    f"its log is {self.log_path}:\n{self.log_tail()}"
                )
            with contextlib.suppress(Exception):
                if check():
                    return
            time.sleep(0.1)
        raise ProcessError(
            f"{self.name} was not ready after {timeout:.0f} s; its log is {self.log_path}:\n"
            f"{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        """Return the last ``lines`` lines of the log file."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 10.0) -> None:
        """End the process group by PID: SIGTERM, then SIGKILL after ``grace`` seconds."""
        self._signal_and_wait(signal.SIGTERM, grace)

    def kill(self) -> None:
        """End the process group at once with SIGKILL, as a crash would."""
        self._signal_and_wait(signal.SIGKILL, 5.0)

    def _signal_and_wait(self, signum: signal.Signals, grace: float) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s (PID %d) ignored %s; sending SIGKILL.", self.name, process.pid, signum.name
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self._process = None
