"""Network namespaces for transport tests, so no test listens on this machine's interfaces.

``run_isolated`` runs a function in a forked child that has its own network
namespace with only ``lo``; the namespace disappears with the child. UCX's
tcp transport listens on every interface, so every UCX test runs this way.

``Topology`` builds named namespaces joined by veth pairs to a bridge in a
hub namespace, one per simulated pod, with addresses in 198.18.0.0/24
(RFC 2544 benchmarking space). It deletes them all on exit, also after a
failure, which also destroys their veth pairs. Each process it starts also
gets its own IPC namespace, as a pod's containers do, so UCX does not treat
two pods as one host (shared memory between them would need both).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import select
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

CLONE_NEWNET = 0x40000000
PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]


requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

# Transfer tests run over both backends; the UCX cases are skipped without ucxx.
BACKENDS = [
    pytest.param("tcp", id="tcp", marks=[pytest.mark.netns, requires_root]),
    pytest.param("ucx", id="ucx", marks=[pytest.mark.ucx, pytest.mark.netns, requires_root]),
]


def ip(*arguments: str, namespace: str | None = None) -> None:
    """Run ``ip`` (inside ``namespace`` if given); raise with its output on failure."""
    command = ["ip", *(["-n", namespace] if namespace else []), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")


def _unshare_network() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"unshare(CLONE_NEWNET) failed: {os.strerror(error)}")
    ip("link", "set", "lo", "up")


def run_isolated(function: Callable[..., Any], *arguments: Any, timeout: float = 120.0) -> Any:
    """Run ``function(*arguments)`` in a forked child in a new network namespace; return its result.

    An exception in the child is raised here again as AssertionError with
    the child's traceback, so a failed assert reads as usual. The child is
    killed if it runs past ``timeout`` seconds.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        status = 0
        try:
            _unshare_network()
            outcome: tuple[str, Any] = ("ok", function(*arguments))
        except BaseException as error:
            outcome = ("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}")
            status = 1
        try:
            data = pickle.dumps(outcome)
        except Exception as error:
            data = pickle.dumps(("error", f"result could not be pickled: {error}"))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    with os.fdopen(read_end, "rb") as pipe:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(
                    f"the isolated test child ran past {timeout:.0f} s and was killed"
                )
            ready, _, _ = select.select([pipe], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(pipe.fileno(), 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    os.waitpid(pid, 0)
    if not chunks:
        raise AssertionError("the isolated test child exited without reporting a result")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        raise AssertionError(f"in the isolated network namespace:\n{value}")
    return value


class Topology:
    """Named namespaces on one bridge, each with an address in 198.18.0.0/24."""

    def __init__(self) -> None:
        self.prefix = f"nfrt{uuid.uuid4().hex[:6]}"
        self.hub = f"{self.prefix}-hub"
        self.addresses: dict[str, str] = {}
        self._namespaces: list[str] = []
        self._processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Topology:
        ip("netns", "add", self.hub)
        self._namespaces.append(self.hub)
        ip("link", "add", "br0", "type", "bridge", namespace=self.hub)
        ip("link", "set", "br0", "up", namespace=self.hub)
        ip("link", "set", "lo", "up", namespace=self.hub)
        return self

    def add_pod(self, name: str) -> str:
        """Create namespace ``name`` with ``eth0`` on the bridge; return its address."""
        index = len(self.addresses) + 2
        namespace = f"{self.prefix}-{name}"
        address = f"198.18.0.{index}"
        ip("netns", "add", namespace)
        self._namespaces.append(namespace)
        port = f"p{index}"
        ip(
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            namespace,
            namespace=self.hub,
        )
        ip("link", "set", port, "master", "br0", namespace=self.hub)
        ip("link", "set", port, "up", namespace=self.hub)
        ip("addr", "add", f"{address}/24", "dev", "eth0", namespace=namespace)
        ip("link", "set", "eth0", "up", namespace=namespace)
        ip("link", "set", "lo", "up", namespace=namespace)
        self.addresses[name] = address
        return address

    def start(
        self,
        pod: str,
        arguments: Sequence[str],
        log: Path,
        shared_ipc: bool = False,
        **environment: str,
    ) -> subprocess.Popen[bytes]:
        """Start ``python arguments`` inside ``pod``'s namespace, output to ``log``.

        The process gets its own IPC namespace unless ``shared_ipc`` is set.
        """
        ipc = [] if shared_ipc else ["unshare", "--ipc"]
        command = ["ip", "netns", "exec", f"{self.prefix}-{pod}", *ipc, PYTHON, *arguments]
        with log.open("ab") as output:
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                env={**os.environ, **environment},
            )
        self._processes.append(process)
        return process

    def __exit__(self, *exc_info: object) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
        for process in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        for namespace in reversed(self._namespaces):
            with contextlib.suppress(RuntimeError):
                ip("netns", "del", namespace)


@contextlib.contextmanager
def topology() -> Iterator[Topology]:
    """Yield a Topology that is torn down when the block ends."""
    with Topology() as built:
        yield built


def wait_for_file(
    path: Path, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> str:
    """Wait until ``path`` exists and is not empty; return its text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            return path.read_text()
        if process is not None and process.poll() is not None:
            raise AssertionError(
                f"process {process.args} exited with {process.returncode} before writing {path}"
            )
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {timeout:.0f} s")
