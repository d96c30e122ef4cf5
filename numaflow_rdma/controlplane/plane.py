"""The whole local control plane: two etcds, kube-apiserver and CoreDNS.

``ControlPlane`` starts the four processes the tests, the demo and the
benchmarks share, all on loopback, in the order their dependencies need:
both etcds together, then kube-apiserver and CoreDNS together. ``stop`` ends
each process by its PID, also after a failed start. Used as a context
manager it stops on exit, whatever happened inside.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from numaflow_rdma.controlplane import binaries
from numaflow_rdma.controlplane.apiserver import KubeApiServer
from numaflow_rdma.controlplane.coredns import CoreDns
from numaflow_rdma.controlplane.etcd import Etcd
from numaflow_rdma.names import DEFAULT_ZONE

logger = logging.getLogger(__name__)


class ControlPlane:
    """etcd for the API server, etcd for DNS records, kube-apiserver and CoreDNS.

    ``dns_bind_addresses`` adds addresses CoreDNS also serves DNS on, such as
    the gateway of a simulated network, so processes in pod namespaces can
    resolve names.
    """

    def __init__(
        self,
        work_dir: Path | None = None,
        zone: str = DEFAULT_ZONE,
        corefile_template: str | None = None,
        dns_bind_addresses: Sequence[str] = (),
    ) -> None:
        self._owns_work_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="numaflow-rdma-controlplane-"))
        self.zone = zone
        self._corefile_template = corefile_template
        self._dns_bind_addresses = tuple(dns_bind_addresses)
        self.api_etcd: Etcd | None = None
        self.dns_etcd: Etcd | None = None
        self.apiserver: KubeApiServer | None = None
        self.coredns: CoreDns | None = None

    def start(self, timeout: float = 90.0) -> ControlPlane:
        """Start every process and wait until each is ready; stop them all on failure."""
        started = time.monotonic()
        try:
            # First, make sure every binary is built, so the timing below is the warm start.
            for name in ("etcd", "kube-apiserver", "coredns"):
                binaries.ensure(name)
            warm_started = time.monotonic()

            # Then both etcds, which nothing else can start without.
            self.api_etcd = Etcd("etcd-api", self.work_dir)
            self.dns_etcd = Etcd("etcd-dns", self.work_dir)
            self.api_etcd.start()
            self.dns_etcd.start()
            self.api_etcd.wait_ready()
            self.dns_etcd.wait_ready()

            # Then the API server and CoreDNS, side by side.
            self.apiserver = KubeApiServer(self.api_etcd.endpoint, self.work_dir)
            self.coredns = CoreDns(
                self.work_dir,
                self.dns_etcd.endpoint,
                self.zone,
                self._corefile_template,
                extra_bind_addresses=self._dns_bind_addresses,
            )
            self.apiserver.start()
            self.coredns.start()
            self.coredns.wait_ready()
            self.apiserver.wait_ready(timeout=max(10.0, timeout - (time.monotonic() - started)))
        except BaseException:
            self.stop()
            raise
        logger.info(
            "Control plane is ready in %.1f s (%.1f s after the binaries were found).",
            time.monotonic() - started,
            time.monotonic() - warm_started,
            extra={"work_dir": str(self.work_dir)},
        )
        return self

    def stop(self) -> None:
        """Stop every process that was started, by PID, and remove the work folder if it is ours."""
        for component in (self.coredns, self.apiserver, self.dns_etcd, self.api_etcd):
            if component is not None:
                try:
                    component.stop()
                except Exception:
                    logger.exception("Stopping a control-plane process failed.")
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
