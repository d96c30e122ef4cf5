"""Signals and leftovers: making sure a demo run ends everything it started.

Ctrl-C, SIGTERM and SIGHUP all become KeyboardInterrupt while the demo runs,
so the same ``finally`` clean-up runs for each of them and for failures.
While clean-up runs, those signals are held off, so a second Ctrl-C cannot
leave half of it undone. Afterwards the demo looks for what survived: its
network namespaces and processes descended from it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from numaflow_rdma.demo.progress import Progress


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt, as Ctrl-C is, so clean-up runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_deferred(progress: Progress) -> Iterator[None]:
    """Ignore Ctrl-C, SIGTERM and SIGHUP while clean-up runs, so it is never cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        progress.say("Still cleaning up; the demo ends when every process and namespace is gone.")

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, hold) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def child_processes() -> list[str]:
    """Return ``pid command`` of every process descended from this one, read from /proc."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:"):
                parents[int(entry.name)] = int(line.split()[1])
        commands[int(entry.name)] = command.strip()
    descendants: list[str] = []
    frontier = [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent:
                frontier.append(pid)
                descendants.append(f"{pid} {commands.get(pid, '')[:120]}")
    return descendants


def network_namespaces(prefix: str) -> list[str]:
    """Return the network namespaces whose name starts with ``prefix``."""


    listing = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False, timeout=10
    )
    found = [line.split()[0] for line in listing.stdout.splitlines() if line.strip()]
    return [name for name in found if name.startswith(prefix)]


