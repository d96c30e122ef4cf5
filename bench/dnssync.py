"""dnssync: from a pod status update to the DNS answer, and a cold start over many pods.

Runs on the whole local control plane: kube-apiserver over etcd, the DNS etcd
and CoreDNS serving the zone from it, with the default Corefile (no cache).
The pods are the Numaflow vertex pod fixtures, renamed and replicated; no
kubelet or Multus runs, so the benchmark writes what Multus and the kubelet
would: the ``k8s.v1.cni.cncf.io/network-status`` annotation with an address
in 198.18.0.0/15, and the Ready condition. These addresses only appear in
DNS answers; no traffic is sent to them.

- Cold start: the pods already exist with their status when ``numaflow-rdma
  dnssync`` starts. Convergence is the time from the process start until the
  DNS etcd contains one record per pod. The resident memory of the process
  is sampled every 100 ms.
- Latency: for one new pod at a time, a single pods/status patch writes
  network-status and Ready together; the time runs from just before that
  patch until CoreDNS answers the pod's own name with its address, polled
  every 2 ms. The cold-start pods stay, so dnssync watches a full namespace.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import cluster
from bench.common import (
    BenchmarkSkipped,
    Worker,
    WorkerError,
    logger,
    resident_bytes,
    stopping,
    summarize,
)
from bench.settings import Settings
from numaflow_rdma import names

NAMESPACE = "bench-dnssync"
OWNER = "bench-dnssync"
# Each poll of the DNS answer waits this long between queries, in seconds.
POLL_INTERVAL = 0.002
ANSWER_TIMEOUT = 10.0
CREATE_THREADS = 8
_ADDRESSES = ipaddress.ip_network("198.18.0.0/15")


def pod_address(index: int) -> str:
    """Return the simulated RDMA address of pod ``index``, in 198.18.0.0/15 past the gateway."""
    return str(_ADDRESSES[index + 10])


def network_status(namespace: str, address: str) -> str:
    """Return a network-status annotation value as Multus writes it for the RDMA network."""
    return json.dumps(
        [
            {"name": "k8s-pod-network", "ips": ["10.244.0.10"], "default": True, "dns": {}},
            {
                "name": f"{namespace}/{cluster.NETWORK_NAME}",
                "interface": names.DEFAULT_INTERFACE,
                "ips": [address],
                "mac": "02:00:00:00:00:01",
                "dns": {},
            },
        ]
    )


def status_patch(namespace: str, address: str) -> dict[str, Any]:
    """Return one pods/status patch that sets network-status and makes the pod Ready."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "metadata": {
            "annotations": {
                names.MULTUS_NETWORK_STATUS_ANNOTATION: network_status(namespace, address)
            }
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            ],
        },
    }


class PodFactory:
    """Vertex pods from the fixtures, cycled and renamed ``<fixture name>-b<index>``."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.templates = cluster.vertex_pods()

    def pod(self, index: int) -> dict[str, Any]:
        """Return pod ``index`` placed in the namespace."""
        template = self.templates[index % len(self.templates)]
        base = template["metadata"]["name"].rsplit("-", 1)[0]
        return cluster.pod_for_api(template, self.namespace, f"{base}-b{index}")

    def dns_name(self, pod: dict[str, Any]) -> str:
        """Return the DNS name of the pod's own record."""
        labels = pod["metadata"]["labels"]
        vertex = names.vertex_dns_name(
            labels[names.LABEL_VERTEX_NAME], labels[names.LABEL_PIPELINE_NAME], self.namespace
        )
        return names.pod_dns_name(pod["metadata"]["name"], vertex)


def create_ready_pods(api_client: Any, factory: PodFactory, indexes: range) -> float:
    """Create pods with network-status and make them Ready, in parallel; return seconds taken."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)

    def create(index: int) -> None:
        pod = factory.pod(index)
        pod["metadata"].setdefault("annotations", {})[names.MULTUS_NETWORK_STATUS_ANNOTATION] = (
            network_status(factory.namespace, pod_address(index))
        )
        core.create_namespaced_pod(factory.namespace, pod, _preload_content=False)  # type: ignore[arg-type]
        core.patch_namespaced_pod_status(
            pod["metadata"]["name"],
            factory.namespace,
            status_patch(factory.namespace, pod_address(index)),
            _preload_content=False,
        )

    started = time.monotonic()
    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        for _ in pool.map(create, indexes):
            pass
    return time.monotonic() - started


class DnsProbe:
    """Queries one CoreDNS for A records, bypassing any cache."""

    def __init__(self, port: int) -> None:
        self.port = port

    def resolves(self, name: str, address: str) -> bool:
        """Tell whether CoreDNS returns ``address`` for ``name`` now."""
        import dns.exception
        import dns.message
        import dns.query
        import dns.rdatatype

        query = dns.message.make_query(name, dns.rdatatype.A)
        try:
            response = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=1.0)
        except (dns.exception.Timeout, OSError):
            return False
        return any(item.to_text() == address for rrset in response.answer for item in rrset)

    def wait_for(self, name: str, address: str, timeout: float = ANSWER_TIMEOUT) -> float | None:
        """Poll until ``name`` resolves to ``address``; return the monotonic time, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.resolves(name, address):
                return time.monotonic()
            time.sleep(POLL_INTERVAL)
        return None


class MemorySampler(threading.Thread):
    """Samples a process tree's resident memory every 100 ms and keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            self.peak = max(self.peak, resident_bytes(self.pid))

    def stop(self) -> int:
        """Stop sampling and return the peak in bytes."""
        self._stop_event.set()
        self.join(timeout=2)
        return self.peak


def count_records(etcd_port: int, prefix: str) -> int:
    """Return how many keys the DNS etcd contains under ``prefix``."""
    import pyetcd

    client = pyetcd.client(host="127.0.0.1", port=etcd_port)
    try:
        return sum(1 for _ in client.get_prefix(prefix, keys_only=True))
    finally:
        client.close()


def start_dnssync(folder: Path, etcd_endpoint: str, kubeconfig: Path) -> Worker:
    """Start ``numaflow-rdma dnssync`` against the DNS etcd and the API server."""
    command = [
        sys.executable,
        "-m",
        "numaflow_rdma.cli",
        "dnssync",
        "--etcd-endpoints",
        etcd_endpoint,
        "--kubeconfig",
        str(kubeconfig),
        "--network",
        cluster.NETWORK_NAME,
        "--owner-id",
        OWNER,
        "--health-port",
        "0",
        "--health-bind-address",
        "127.0.0.1",
    ]
    return Worker("dnssync", command, folder / "dnssync.log").start()


def unavailable_reason() -> str | None:
    """Return why dnssync cannot run here, or None when it can."""
    import importlib

    try:
        command = importlib.import_module("numaflow_rdma.dnssync.command")
    except ImportError as error:
        return f"numaflow_rdma.dnssync.command cannot be imported: {error}"
    if not hasattr(command, "run"):
        return "numaflow_rdma.dnssync.command has no run function"
    return None


def measure_cold_start(
    worker: Worker, etcd_port: int, prefix: str, pods: int, timeout: float
) -> dict[str, Any]:
    """Wait until the DNS etcd contains ``pods`` records; return the time and the peak memory."""
    sampler = MemorySampler(worker.pid)
    sampler.start()
    started = time.monotonic()
    converged: float | None = None
    records = 0
    try:
        while time.monotonic() - started < timeout:
            if not worker.running():
                raise WorkerError(f"dnssync exited during the cold start:\n{worker.log_tail()}")
            records = count_records(etcd_port, prefix)
            if records >= pods:
                converged = time.monotonic() - started
                break
            time.sleep(0.1)
    finally:
        peak = sampler.stop()
    return {
        "pods": pods,
        "records": records,
        "converged_s": converged,
        "peak_rss_bytes": peak,
        "rss_after_bytes": resident_bytes(worker.pid),
        "timeout_s": timeout,
    }


def measure_latency(
    api_client: Any, factory: PodFactory, probe: DnsProbe, first_index: int, count: int
) -> dict[str, Any]:
    """Create ``count`` pending pods, then time each one's status patch until its DNS answer."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    pods = [factory.pod(first_index + offset) for offset in range(count)]
    for pod in pods:
        core.create_namespaced_pod(factory.namespace, pod, _preload_content=False)  # type: ignore[arg-type]
    latencies_ms: list[float] = []
    missed = 0
    for offset, pod in enumerate(pods):
        address = pod_address(first_index + offset)
        name = factory.dns_name(pod)
        started = time.monotonic()
        core.patch_namespaced_pod_status(
            pod["metadata"]["name"],
            factory.namespace,
            status_patch(factory.namespace, address),
            _preload_content=False,
        )
        answered = probe.wait_for(name, address)
        if answered is None:
            missed += 1
            continue
        latencies_ms.append((answered - started) * 1000)
    return {"updates": count, "missed": missed, "latency_ms": summarize(latencies_ms)}


def run(settings: Settings) -> dict[str, Any]:
    """Start the control plane, then run the cold start and the latency measurement."""
    from numaflow_rdma.controlplane.plane import ControlPlane

    reason = unavailable_reason()
    if reason:
        raise BenchmarkSkipped(reason)
    factory = PodFactory(NAMESPACE)
    folder = Path(tempfile.mkdtemp(prefix="numaflow-rdma-bench-dnssync-"))
    plane = ControlPlane(work_dir=folder)
    try:
        plane.start()
        assert plane.apiserver is not None
        assert plane.dns_etcd is not None
        assert plane.coredns is not None
        api_client = plane.apiserver.api_client()
        cluster.create_opted_in_namespace(api_client, NAMESPACE)
        pods = settings.dnssync_cold_pods
        creation_s = create_ready_pods(api_client, factory, range(pods))
        logger.info("Created %d Ready vertex pods in %.1f s.", pods, creation_s)

        prefix = names.zone_etcd_prefix() + NAMESPACE + "/"
        worker = start_dnssync(folder, plane.dns_etcd.endpoint, plane.apiserver.kubeconfig_path)
        with stopping(worker):
            cold = measure_cold_start(
                worker, plane.dns_etcd.client_port, prefix, pods, timeout=max(60.0, pods / 20)
            )
            cold["pod_creation_s"] = creation_s
            logger.info(
                "dnssync cold start over %d pods: %s s, peak RSS %.0f MB",
                pods,
                f"{cold['converged_s']:.2f}"
                if cold["converged_s"] is not None
                else "not converged",
                cold["peak_rss_bytes"] / 1e6,
            )
            latency = measure_latency(
                api_client, factory, DnsProbe(plane.coredns.port), pods, settings.dnssync_updates
            )
            logger.info(
                "dnssync status-to-DNS latency: p50 %.1f ms, p99 %.1f ms, %d missed",
                latency["latency_ms"]["p50"],
                latency["latency_ms"]["p99"],
                latency["missed"],
            )
        api_client.close()
    finally:
        plane.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return {"cold_start": cold, "latency": latency}
