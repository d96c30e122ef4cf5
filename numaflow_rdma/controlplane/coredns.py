"""CoreDNS on loopback, answering the vertex zone from the DNS etcd.

By default the server block is the smallest one that serves the zone from
etcd, without ``cache``, so tests see every change to etcd at once. A caller
that wants the production configuration passes the Corefile text that
``numaflow-rdma coredns`` generates, with the placeholders ``{port}``,
``{ready_port}`` and ``{health_port}`` where the loopback ports go; they are
replaced as plain text, so the Corefile's own braces need no escaping.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from numaflow_rdma.controlplane import binaries
from numaflow_rdma.controlplane.process import LOOPBACK, ManagedProcess, free_ports
from numaflow_rdma.names import DEFAULT_ETCD_PREFIX, DEFAULT_ZONE

logger = logging.getLogger(__name__)

_DEFAULT_COREFILE = """\
ZONE:{port} {
    bind ADDRESS
    etcd {
        path PREFIX
        endpoint ENDPOINT
    }
    ready ADDRESS:{ready_port}
    health ADDRESS:{health_port}
    errors
}
"""


def default_corefile(
    etcd_endpoint: str,
    zone: str = DEFAULT_ZONE,
    prefix: str = DEFAULT_ETCD_PREFIX,
    extra_bind_addresses: Sequence[str] = (),
) -> str:
    """Return a Corefile template serving ``zone`` from etcd, with port placeholders.

    DNS is served on loopback and on ``extra_bind_addresses``; the health and
    ready endpoints on loopback only.
    """
    return (
        _DEFAULT_COREFILE.replace("ZONE", zone)
        .replace("bind ADDRESS", "bind " + " ".join([LOOPBACK, *extra_bind_addresses]))
        .replace("ADDRESS", LOOPBACK)
        .replace("PREFIX", prefix)
        .replace("ENDPOINT", etcd_endpoint)
    )


class CoreDns:
    """One CoreDNS process on loopback ports chosen at construction."""

    def __init__(
        self,
        work_dir: Path,
        etcd_endpoint: str,
        zone: str = DEFAULT_ZONE,
        corefile_template: str | None = None,
        name: str = "coredns",
        extra_bind_addresses: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.zone = zone
        self.port, self.ready_port, self.health_port = free_ports(3)
        template = corefile_template or default_corefile(
            etcd_endpoint, zone, extra_bind_addresses=extra_bind_addresses
        )
        self.corefile_path = work_dir / f"{name}.Corefile"
        corefile = (
            template.replace("{port}", str(self.port))
            .replace("{ready_port}", str(self.ready_port))
            .replace("{health_port}", str(self.health_port))
        )
        self.corefile_path.write_text(corefile)
        self._process = ManagedProcess(
            name,
            [str(binaries.ensure("coredns")), "-conf", str(self.corefile_path)],
            work_dir / f"{name}.log",
        )

    @property
    def address(self) -> tuple[str, int]:
        """Return the DNS server's address, ``(127.0.0.1, port)``, for UDP and TCP."""
        return (LOOPBACK, self.port)

    @property
    def pid(self) -> int | None:
        """Return the PID of CoreDNS, or None when it is stopped."""
        return self._process.pid

    def is_ready(self) -> bool:
        """Return True once the ready plugin answers 200."""
        url = f"http://{LOOPBACK}:{self.ready_port}/ready"
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)

    def start(self) -> None:
        """Start CoreDNS; returns at once, call ``wait_ready`` before use."""
        self._process.start()

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until the ready plugin answers."""
        self._process.wait_ready(self.is_ready, timeout)
        logger.info("%s is ready at %s:%d (PID %s).", self.name, LOOPBACK, self.port, self.pid)

    def stop(self) -> None:
        """Stop CoreDNS by its PID."""
        self._process.stop()

    def log_tail(self) -> str:
        """Return the end of CoreDNS's log."""
        return self._process.log_tail()
