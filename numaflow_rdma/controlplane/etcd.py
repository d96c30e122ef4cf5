"""A single-member etcd on loopback, for the API server or for DNS records.

Production runs two etcds: the cluster's, behind kube-apiserver, and the one
the CoreDNS etcd plugin reads records from. The local control plane does the
same. An instance keeps its data folder across ``restart``, so tests can stop
etcd, let clients see the outage, and bring the same data back.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.request
from pathlib import Path

from numaflow_rdma.controlplane import binaries
from numaflow_rdma.controlplane.process import LOOPBACK, ManagedProcess, free_ports

logger = logging.getLogger(__name__)


def _base64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


class Etcd:
    """One etcd member listening on loopback ports chosen at construction."""

    def __init__(self, name: str, work_dir: Path) -> None:
        self.name = name
        self.data_dir = work_dir / f"{name}.data"
        self.client_port, self.peer_port, self.metrics_port = free_ports(3)
        self._process = ManagedProcess(
            name,
            self._command(),
            work_dir / f"{name}.log",
        )

    @property
    def endpoint(self) -> str:
        """Return the client URL, ``http://127.0.0.1:<port>``."""
        return f"http://{LOOPBACK}:{self.client_port}"

    @property
    def pid(self) -> int | None:
        """Return the PID of the etcd process, or None when it is stopped."""
        return self._process.pid

    def _command(self) -> list[str]:
        client = f"http://{LOOPBACK}:{self.client_port}"
        peer = f"http://{LOOPBACK}:{self.peer_port}"
        return [
            str(binaries.ensure("etcd")),
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={self.name}={peer}",
            "--initial-cluster-state=new",
            f"--listen-metrics-urls=http://{LOOPBACK}:{self.metrics_port}",
            "--logger=zap",
            "--log-level=warn",
            # The data is thrown away after each run; fsync costs more than it buys here.
            "--unsafe-no-fsync",
            "--quota-backend-bytes=2147483648",
        ]

    def is_healthy(self) -> bool:
        """Return True once ``/health`` reports healthy."""
        with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1) as response:
            return bool(json.load(response).get("health") == "true")

    def start(self) -> None:
        """Start etcd; returns at once, call ``wait_ready`` before use."""
        self._process.start()

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until etcd reports healthy."""
        self._process.wait_ready(self.is_healthy, timeout)
        logger.info("%s is ready at %s (PID %s).", self.name, self.endpoint, self.pid)

    def stop(self) -> None:
        """Stop etcd by its PID, keeping the data folder."""
        self._process.stop()

    def kill(self) -> None:
        """Kill etcd with SIGKILL, keeping the data folder."""
        self._process.kill()

    def restart(self, timeout: float = 20.0) -> None:
        """Stop etcd and start it again on the same ports with the same data."""
        self.stop()
        self.start()
        self.wait_ready(timeout)

    def log_tail(self) -> str:
        """Return the end of etcd's log."""
        return self._process.log_tail()

    def put(self, key: str, value: str) -> None:
        """Write one key through etcd's JSON gateway, without gRPC.

        gRPC's fork handlers start threads in a forked child before the child
        can move to another network namespace, so a gRPC client there dials
        from the parent's namespace. Tests that run in such a child use this.
        """
        self._gateway("/v3/kv/put", {"key": _base64(key), "value": _base64(value)})

    def delete(self, key: str) -> None:
        """Delete one key through etcd's JSON gateway, without gRPC."""
        self._gateway("/v3/kv/deleterange", {"key": _base64(key)})

    def _gateway(self, path: str, body: dict[str, str]) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}{path}",
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
