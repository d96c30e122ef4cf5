"""The system the demo runs on: control plane, simulated RDMA network, webhook and dnssync.

Everything is a real process on this machine: two etcds, kube-apiserver and
CoreDNS from ``numaflow_rdma.controlplane``, the ``numaflow-rdma webhook``
command serving over TLS and registered through a
MutatingWebhookConfiguration, and the ``numaflow-rdma dnssync`` command. The
RDMA network is a Linux bridge with the gateway 198.18.0.1; CoreDNS also
listens there, so UDF processes in pod network namespaces can resolve names.

The demo builds ``Platform`` step by step. ``close`` ends whatever was
started, in reverse order, so it can run after a failure at any step.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import ssl
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from numaflow_rdma import certs, names
from numaflow_rdma.controlplane import binaries
from numaflow_rdma.controlplane.network import SimulatedNetwork
from numaflow_rdma.controlplane.plane import ControlPlane
from numaflow_rdma.controlplane.process import LOOPBACK, ManagedProcess, free_port
from numaflow_rdma.demo.kube import DemoKube
from numaflow_rdma.demo.progress import DemoError, Progress
from numaflow_rdma.demo.settings import DemoSettings
from numaflow_rdma.dnssync.kube import KubeClient
from numaflow_rdma.webhook.configuration import webhook_configuration

logger = logging.getLogger(__name__)

# The RDMA network as the cluster administrator would have set it up.
SYSTEM_NAMESPACE = "numaflow-rdma-system"
NETWORK_NAME = "rdma-net"
RDMA_RESOURCE = "rdma/hca_shared_devices_a"
# The node the simulated scheduler binds pods to; no Node object backs it.
NODE_NAME = "numaflow-rdma-demo-node"
DNSSYNC_OWNER = "numaflow-rdma-demo"


def check_prerequisites(settings: DemoSettings) -> None:
    """Raise DemoError when this machine cannot run the demo, saying what to install or change."""
    step = "check prerequisites"
    if os.geteuid() != 0:
        raise DemoError(
            step,
            "the demo creates network namespaces and a bridge, which needs root",
            "run it as root: 'sudo make demo', or 'sudo .venv/bin/numaflow-rdma demo'",
        )
    if shutil.which("ip") is None:
        raise DemoError(step, "the 'ip' command is missing", "install iproute2 (hack/setup.sh does)")
    missing = []
    for module in ("kubernetes", "pyetcd", "flask", "gunicorn", "dns", "skimage", "yaml"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise DemoError(
            step,
            f"Python packages missing: {', '.join(missing)}",
            "install the dev extras: .venv/bin/python -m pip install -e '.[dev]' (hack/setup.sh does)",
        )
    if settings.backend == "ucx":
        from numaflow_rdma.transport.backends import ucx

        if not ucx.is_installed():
            raise DemoError(
                step,
                "the ucx backend was requested but the ucxx package is not installed",
                "install numaflow-rdma[ucx], or choose --backend tcp",
            )


def _https_ready(url: str, ca_path: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca_path))
    with urllib.request.urlopen(url, timeout=2, context=context) as response:
        return bool(response.status == 200)


def _http_ready(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def _cli_command(subcommand: str) -> list[str]:
    return [sys.executable, "-m", "numaflow_rdma.cli", subcommand]


class Platform:
    """The processes and objects every demo run needs, and their clean-up."""

    def __init__(self, work_dir: Path, progress: Progress, record_ttl: int, timeout: float) -> None:
        self.work_dir = work_dir
        self.progress = progress
        self.record_ttl = record_ttl
        self.timeout = timeout
        self.network: SimulatedNetwork | None = None
        self.plane: ControlPlane | None = None
        self.kube: DemoKube | None = None
        self.webhook: ManagedProcess | None = None
        self.dnssync: ManagedProcess | None = None
        self._api_client: Any = None

    @property
    def network_name(self) -> str:
        """Return the RDMA NetworkAttachmentDefinition as ``namespace/name``."""
        return f"{SYSTEM_NAMESPACE}/{NETWORK_NAME}"

    @property
    def nameserver(self) -> str:
        """Return CoreDNS on the gateway, as ``ip:port``, the DNS server the UDFs use."""
        assert self.network is not None
        assert self.plane is not None
        assert self.plane.coredns is not None
        return f"{self.network.gateway}:{self.plane.coredns.port}"

    def build_programs(self) -> None:
        """Build etcd, kube-apiserver and CoreDNS if they are not cached yet."""
        for program in ("etcd", "kube-apiserver", "coredns"):
            path = binaries.PROGRAMS[program].path
            if path.is_file():
                continue
            self.progress.say(
                f"Building {program} {binaries.PROGRAMS[program].version} from its Go module "
                f"into {path}; this happens once and takes minutes (kube-apiserver about 5 to "
                "10 on two cores)."
            )
            self.progress.while_running(
                functools.partial(binaries.ensure, program), f"Still building {program}"
            )

    def open_network(self) -> SimulatedNetwork:
        """Create the bridge of the simulated RDMA network, with the gateway address."""
        self.network = SimulatedNetwork().open()
        return self.network

    def start_control_plane(self) -> None:
        """Start both etcds, kube-apiserver and CoreDNS, with CoreDNS also on the gateway."""
        assert self.network is not None
        self.plane = ControlPlane(
            work_dir=self.work_dir / "controlplane", dns_bind_addresses=[self.network.gateway]
        )
        self.plane.start(timeout=self.timeout)
        assert self.plane.apiserver is not None
        self._api_client = self.plane.apiserver.api_client()
        self.kube = DemoKube(KubeClient(self._api_client))

    def create_rdma_network(self) -> None:
        """Register the NetworkAttachmentDefinition CRD and the RDMA network, as Multus has them."""
        assert self.kube is not None
        self.kube.register_nad_crd(timeout=self.timeout)
        self.kube.create_namespace(SYSTEM_NAMESPACE, {})
        self.kube.create_nad(
            SYSTEM_NAMESPACE,
            NETWORK_NAME,
            RDMA_RESOURCE,
            {"cniVersion": "0.3.1", "name": NETWORK_NAME, "type": "macvlan", "master": "ib0"},
        )

    def start_webhook(self) -> str:
        """Start ``numaflow-rdma webhook`` over TLS and register it; return its URL."""
        assert self.plane is not None
        assert self.plane.apiserver is not None
        assert self.kube is not None
        folder = self.work_dir / "webhook"
        folder.mkdir(parents=True, exist_ok=True)
        ca = certs.make_ca("numaflow-rdma demo webhook CA")
        ca_path = folder / "ca.crt"
        ca_path.write_bytes(ca.certificate_pem)
        serving = certs.issue_certificate(ca, "webhook", hosts=[LOOPBACK, "localhost"])
        certificate_path, key_path = folder / "tls.crt", folder / "tls.key"
        serving.write(certificate_path, key_path)

        port = free_port()
        url = f"https://{LOOPBACK}:{port}"
        command = [
            *_cli_command("webhook"),
            "--bind-address", LOOPBACK,
            "--port", str(port),
            "--tls-cert-file", str(certificate_path),
            "--tls-key-file", str(key_path),
            "--network", self.network_name,
            "--kubeconfig", str(self.plane.apiserver.kubeconfig_path),
            "--workers", "1",
            "--threads", "4",
        ]  # fmt: skip
        self.webhook = ManagedProcess("webhook", command, folder / "webhook.log")
        self.webhook.start()
        self.webhook.wait_ready(lambda: _https_ready(f"{url}/readyz", ca_path), self.timeout)
        self.kube.create_mutating_webhook_configuration(
            webhook_configuration(
                f"numaflow-rdma-demo-{uuid.uuid4().hex[:6]}",
                certs.ca_bundle(ca),
                url=url,
                timeout_seconds=10,
            )
        )
        return url

    def start_dnssync(self) -> None:
        """Start ``numaflow-rdma dnssync`` against the DNS etcd and wait until it is ready."""
        assert self.plane is not None
        assert self.plane.apiserver is not None
        assert self.plane.dns_etcd is not None
        folder = self.work_dir / "dnssync"
        folder.mkdir(parents=True, exist_ok=True)
        health_port = free_port()
        command = [
            *_cli_command("dnssync"),
            "--etcd-endpoints", self.plane.dns_etcd.endpoint,
            "--kubeconfig", str(self.plane.apiserver.kubeconfig_path),
            "--network", self.network_name,
            "--record-ttl", str(self.record_ttl),
            "--owner-id", DNSSYNC_OWNER,
            "--lease-namespace", SYSTEM_NAMESPACE,
            "--health-port", str(health_port),
            "--health-bind-address", LOOPBACK,
        ]  # fmt: skip
        self.dnssync = ManagedProcess("dnssync", command, folder / "dnssync.log")
        self.dnssync.start()
        self.dnssync.wait_ready(
            lambda: _http_ready(f"http://{LOOPBACK}:{health_port}/readyz"), self.timeout
        )

    def check_processes(self) -> list[str]:
        """Return a line for each platform process that has exited."""
        problems = []
        for process in (self.webhook, self.dnssync):
            if process is not None and process.pid is None:
                problems.append(
                    f"{process.name} exited; the end of its log ({process.log_path}):\n"
                    f"{process.log_tail()}"
                )
        return problems

    def close(self) -> None:
        """Stop dnssync, the webhook and the control plane, then remove the network."""
        for process in (self.dnssync, self.webhook):
            if process is not None:
                try:
                    process.stop(grace=10.0)
                except Exception:
                    logger.exception("Stopping %s failed.", process.name)
        if self._api_client is not None:
            with contextlib.suppress(Exception):
                self._api_client.close()
        if self.plane is not None:
            self.plane.stop()
        if self.network is not None:
            self.network.close()


def vertex_name(vertex: str, namespace: str, pipeline: str) -> str:
    """Return the DNS name of a vertex of the demo pipeline."""
    return names.vertex_dns_name(vertex, pipeline, namespace)
