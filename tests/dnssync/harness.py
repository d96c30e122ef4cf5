"""Helpers for dnssync integration tests: vertex pods in the real API, dnssync processes, DNS answers.

Pods come from the real Numaflow pod JSON in ``numaflow_rdma/fixtures``. No
kubelet or Multus runs here, so a test does their part: it writes
network-status and the Ready condition through the pods/status subresource.
"""

from __future__ import annotations

import copy
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import dns.exception
import dns.resolver
from podfactory import RDMA_NETWORK, network_status

from numaflow_rdma import names
from numaflow_rdma.controlplane.process import LOOPBACK, ManagedProcess, free_port
from numaflow_rdma.dnssync.kube import KubeApiError, KubeClient

FIXTURES = Path(__file__).resolve().parents[2] / "numaflow_rdma" / "fixtures" / "numaflow"


# The console script the package installs, as a Deployment runs it.
COMMAND = [str(Path(sys.executable).with_name("numaflow-rdma")), "dnssync"]


@cache
def _fixture_vertex_pod() -> dict[str, Any]:
    document = json.loads((FIXTURES / "video-sidecar.json").read_text())
    for pod in document["pods"]:
        if names.is_vertex_pod_labels(pod["metadata"].get("labels")):
            return dict(pod)
    raise AssertionError("the video fixture has no vertex pod")


def vertex_pod_manifest(
    namespace: str, name: str, *, pipeline: str = "video", vertex: str = "infer"
) -> dict[str, Any]:
    """Return a real Numaflow vertex pod, renamed into ``namespace`` as ``pipeline``/``vertex``."""
    pod = copy.deepcopy(_fixture_vertex_pod())
    metadata = pod["metadata"]
    metadata["name"] = name
    metadata["namespace"] = namespace
    # The fixture's Vertex owner has no UID; the API server rejects such a reference.
    metadata.pop("ownerReferences", None)
    metadata.pop("creationTimestamp", None)
    metadata["labels"][names.LABEL_PIPELINE_NAME] = pipeline
    metadata["labels"][names.LABEL_VERTEX_NAME] = vertex
    metadata["labels"]["app.kubernetes.io/name"] = f"{pipeline}-{vertex}"
    pod.pop("status", None)
    return pod


class Pods:
    """Creates vertex pods and plays kubelet and Multus for them."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    def create(self, namespace: str, name: str, **labels: str) -> None:
        self.kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            body=vertex_pod_manifest(namespace, name, **labels),
        )

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.kube.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            body=patch,
            content_type="application/merge-patch+json",
        )

    def attach(self, namespace: str, name: str, address: str, network: str = RDMA_NETWORK) -> None:
        """Write network-status as Multus does once the sandbox has its interfaces."""
        self.set_network_status(namespace, name, network_status(address, network))

    def set_network_status(self, namespace: str, name: str, value: str) -> None:
        self.patch_status(
            namespace,
            name,
            {"metadata": {"annotations": {names.MULTUS_NETWORK_STATUS_ANNOTATION: value}}},
        )

    def set_ready(self, namespace: str, name: str, ready: bool = True) -> None:
        """Write the Ready condition and phase Running as the kubelet does."""
        status = "True" if ready else "False"
        self.patch_status(
            namespace,
            name,
            {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": status}]}},
        )

    def start(self, namespace: str, name: str, address: str, **labels: str) -> None:
        """Create a pod, attach it and mark it Ready."""
        self.create(namespace, name, **labels)
        self.attach(namespace, name, address)
        self.set_ready(namespace, name)

    def delete(self, namespace: str, name: str) -> None:
        # No kubelet runs, so an unscheduled pod is removed at once.
        self.kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}")

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        body = self.kube.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/events",
            query={"fieldSelector": f"involvedObject.name={name}"},
        )
        return list(body.get("items") or [])


def create_namespace(kube: KubeClient, name: str, opted_in: bool = True) -> None:
    labels = {names.INJECT_LABEL: names.INJECT_LABEL_ENABLED} if opted_in else {}
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name, "labels": labels}})


def set_namespace_label(kube: KubeClient, name: str, value: str | None) -> None:
    kube.request(
        "PATCH",
        f"/api/v1/namespaces/{name}",
        body={"metadata": {"labels": {names.INJECT_LABEL: value}}},
        content_type="application/merge-patch+json",
    )


def delete_namespace(kube: KubeClient, name: str) -> None:
    """Delete every pod of the namespace, then the namespace, which no controller empties here."""
    try:
        kube.request("DELETE", f"/api/v1/namespaces/{name}/pods")
        kube.request("DELETE", f"/api/v1/namespaces/{name}")
    except KubeApiError as error:
        if error.status != 404:
            raise


def vertex_name(namespace: str, vertex: str = "infer", pipeline: str = "video") -> str:
    return names.vertex_dns_name(vertex, pipeline, namespace)


def answers(resolver: dns.resolver.Resolver, name: str, rdtype: str = "A") -> set[str]:
    """Return the set of addresses (or SRV ``port target``) for ``name``; empty on NXDOMAIN or no data."""
    try:
        result = resolver.resolve(name, rdtype)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return set()
    if rdtype == "SRV":
        return {f"{item.port} {item.target}" for item in result}
    return {item.address for item in result}


def rcode_of(resolver: dns.resolver.Resolver, name: str) -> str:
    """Return the response code CoreDNS gives for an A query of ``name``."""
    import dns.message
    import dns.query

    query = dns.message.make_query(name, "A")
    response = dns.query.udp(query, str(resolver.nameservers[0]), port=resolver.port, timeout=10)
    return dns.rcode.to_text(response.rcode())


def wait_until(
    check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``check`` until it returns a true value; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except dns.exception.DNSException as error:
            last = error
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what or check}; last result {last!r}"
    )


class DnssyncProcess:
    """``numaflow-rdma dnssync`` as a real subprocess, with its log file and health port."""

    def __init__(
        self,
        work_dir: Path,
        name: str,
        *,
        kubeconfig: Path,
        etcd_endpoint: str,
        owner_id: str,
        lease_name: str,
        extra: Sequence[str] = (),
        environment: dict[str, str] | None = None,
    ) -> None:
        self.health_port = free_port()
        self.log_path = work_dir / f"{name}.log"
        command = [
            *COMMAND,
            f"--kubeconfig={kubeconfig}",
            f"--etcd-endpoints={etcd_endpoint}",
            f"--network={RDMA_NETWORK}",
            f"--owner-id={owner_id}",
            f"--lease-name={lease_name}",
            "--lease-namespace=default",
            f"--health-port={self.health_port}",
            f"--health-bind-address={LOOPBACK}",
            *extra,
        ]
        self._process = ManagedProcess(name, command, self.log_path, environment=environment or {})

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def start(self, wait_ready: bool = True) -> DnssyncProcess:
        self._process.start()
        if wait_ready:
            self._process.wait_ready(lambda: self.probe("/readyz")[0] == 200, 30.0)
        return self

    def probe(self, path: str) -> tuple[int, str]:
        """GET ``path`` from the health server; status 0 when the server does not respond."""
        try:
            with urllib.request.urlopen(
                f"http://{LOOPBACK}:{self.health_port}{path}", timeout=2
            ) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()
        except OSError:
            return 0, ""

    def metric(self, name: str) -> float | None:
        """Return the value of an unlabelled metric from /metrics, or None."""
        status, text = self.probe("/metrics")
        for line in text.splitlines() if status == 200 else []:
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        self._process.stop()

    def kill(self) -> None:
        self._process.kill()
