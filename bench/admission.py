"""Admission: numaflow-rdma's webhook against network-resources-injector, at fixed rates.

Both webhooks run on loopback over TLS with the same serving certificate and
read the same NetworkAttachmentDefinition from the same real kube-apiserver.
One open-loop load generator (``bench.loadgen``) sends both the same corpus
of AdmissionReviews, built from the Numaflow vertex pod fixtures, at each
rate in turn. At each rate the two servers take turns, so a drift in the
machine's speed affects both alike.

Every pod of the corpus carries ``k8s.v1.cni.cncf.io/networks: rdma-net``,
as a pipeline that names the network in its vertex metadata would, because
network-resources-injector acts only on pods that name a network. So both
webhooks look up the network's resource name and return a patch for every
request.

network-resources-injector runs as in a cluster: its in-cluster client reads
a service-account token and CA from /var/run/secrets/kubernetes.io/
serviceaccount, which it gets from a private mount namespace (``unshare
--mount``) with a tmpfs over /run, so nothing is written outside the
benchmark's folder. It runs with ``-insecure``, which only turns off its
check of client certificates, as sriov-network-operator deploys it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import ssl
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench import cluster, profiling
from bench.common import (
    BenchmarkSkipped,
    Worker,
    WorkerError,
    cpu_times,
    logger,
    stopping,
)
from bench.loadgen import run_rate
from bench.settings import Settings
from numaflow_rdma import certs, names
from numaflow_rdma.controlplane.process import free_port

NAMESPACE = "bench-admission"
SERVICE_ACCOUNT = "network-resources-injector"
SERVICE_ACCOUNT_NAMESPACE = "kube-system"
WEBHOOK = "numaflow-rdma webhook"
INJECTOR = "network-resources-injector"
# The extra run that py-spy samples: its rate and length.
PROFILE_RATE = 200
PROFILE_SECONDS = 8.0


def admission_reviews(pods: list[dict[str, Any]], namespace: str) -> list[tuple[str, bytes]]:
    """Build one CREATE AdmissionReview per pod, with the RDMA network named on the pod."""
    reviews = []
    for pod in pods:
        placed = cluster.pod_for_namespace(pod, namespace)
        annotations = placed["metadata"].setdefault("annotations", {})
        annotations[names.MULTUS_NETWORKS_ANNOTATION] = cluster.NETWORK_NAME
        uid = str(uuid.uuid4())
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "name": placed["metadata"]["name"],
                "namespace": namespace,
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:numaflow-system:numaflow"},
                "object": placed,
                "oldObject": None,
                "dryRun": False,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            },
        }
        reviews.append((uid, json.dumps(review).encode()))
    return reviews


class TlsFiles:
    """A CA and one serving certificate for 127.0.0.1, shared by both webhooks."""

    def __init__(self, folder: Path) -> None:
        ca = certs.make_ca("numaflow-rdma benchmark CA")
        serving = certs.issue_certificate(ca, "bench-webhook", hosts=["127.0.0.1", "localhost"])
        self.ca_path = folder / "ca.crt"
        self.cert_path = folder / "tls.crt"
        self.key_path = folder / "tls.key"
        self.ca_path.write_bytes(ca.certificate_pem)
        serving.write(self.cert_path, self.key_path)

    def client_context(self) -> ssl.SSLContext:
        """Return a client context that trusts only the benchmark CA."""
        return ssl.create_default_context(cafile=str(self.ca_path))


def _wait_https(url: str, context: ssl.SSLContext, worker: Worker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.running():
            raise WorkerError(f"{worker.name} exited at start-up:\n{worker.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2, context=context):
                return
        except urllib.error.HTTPError:
            # Any HTTP status means TLS and routing work, and /mutate returns 405 to a GET.
            return
        except OSError:
            time.sleep(0.2)
    raise WorkerError(
        f"{worker.name} did not respond at {url} within {timeout:.0f} s:\n{worker.log_tail()}"
    )


def start_webhook(folder: Path, tls: TlsFiles, kubeconfig: Path) -> tuple[Worker, str]:
    """Start ``numaflow-rdma webhook`` on a loopback port; return it and its /mutate URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "numaflow_rdma.cli",
        "webhook",
        "--network",
        cluster.NETWORK_NAME,
        "--kubeconfig",
        str(kubeconfig),
        "--bind-address",
        "127.0.0.1",
        "--port",
        str(port),
        "--tls-cert-file",
        str(tls.cert_path),
        "--tls-key-file",
        str(tls.key_path),
    ]
    worker = Worker(WEBHOOK, command, folder / "webhook.log").start()
    _wait_https(f"https://127.0.0.1:{port}/healthz", tls.client_context(), worker, 60)
    return worker, f"https://127.0.0.1:{port}/mutate"


def _service_account_token(api_client: Any) -> str:
    """Create the injector's service account with cluster-admin and return a one-hour token."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(
        SERVICE_ACCOUNT_NAMESPACE,
        client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=SERVICE_ACCOUNT)),
    )
    client.RbacAuthorizationV1Api(api_client).create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=f"{SERVICE_ACCOUNT}-bench"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"
            ),
            subjects=[
                client.RbacV1Subject(
                    kind="ServiceAccount", name=SERVICE_ACCOUNT, namespace=SERVICE_ACCOUNT_NAMESPACE
                )
            ],
        )
    )
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    answer = core.create_namespaced_service_account_token(
        SERVICE_ACCOUNT, SERVICE_ACCOUNT_NAMESPACE, request
    )
    if answer.status is None or not answer.status.token:
        raise WorkerError(f"the API server returned no token for {SERVICE_ACCOUNT}")
    return str(answer.status.token)


def start_injector(
    binary: Path, folder: Path, tls: TlsFiles, api_client: Any, apiserver_port: int, ca_path: Path
) -> tuple[Worker, str]:
    """Start network-resources-injector with an in-cluster identity; return it and its URL."""
    # The flags and the in-cluster files follow cmd/webhook/main.go of
    # network-resources-injector v1.9.0. The module proxy does not serve that
    # module here, so its binary is built by hand from source (see binaries.py).
    secrets_dir = folder / "serviceaccount"
    secrets_dir.mkdir()
    (secrets_dir / "token").write_text(_service_account_token(api_client))
    shutil.copy(ca_path, secrets_dir / "ca.crt")
    (secrets_dir / "namespace").write_text(SERVICE_ACCOUNT_NAMESPACE)

    port, health_port = free_port(), free_port()
    mount_point = "/run/secrets/kubernetes.io/serviceaccount"
    script = (
        "set -e; mount -t tmpfs bench-run /run; "
        f"mkdir -p {mount_point}; cp {secrets_dir}/token {secrets_dir}/ca.crt "
        f'{secrets_dir}/namespace {mount_point}/; exec "$@"'
    )
    command = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        script,
        "sh",
        str(binary),
        "-bind-address=127.0.0.1",
        f"-port={port}",
        f"-health-check-port={health_port}",
        f"-tls-cert-file={tls.cert_path}",
        f"-tls-private-key-file={tls.key_path}",
        "-insecure",
        "-logtostderr",
    ]

    environment = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(apiserver_port),
        "NAMESPACE": SERVICE_ACCOUNT_NAMESPACE,
    }
    worker = Worker(INJECTOR, command, folder / "injector.log", environment).start()
    _wait_https(f"https://127.0.0.1:{port}/mutate", tls.client_context(), worker, 60)
    return worker, f"https://127.0.0.1:{port}/mutate"


def injector_unavailable_reason() -> str | None:
    """Return why network-resources-injector cannot run here, or None when it can."""
    from numaflow_rdma.controlplane import binaries

    if shutil.which("unshare") is None:
        return "the 'unshare' command (util-linux) is missing"
    import os

    if os.geteuid() != 0:
        return "its private mount namespace needs root"
    try:
        binaries.ensure("network-resources-injector")
    except binaries.BuildError as error:
        return "network-resources-injector could not be built: " + condense_build_error(str(error))
    return None


def condense_build_error(message: str) -> str:
    """Return the first line of a Go build error and, when the module proxy rejected it, its status."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return message
    status = next(
        (match.group(1) for line in lines if (match := re.search(r": (\d{3} [A-Za-z ]+)$", line))),
        None,
    )
    response = next(
        (
            line.split("server response:", 1)[1].strip()
            for line in lines
            if "server response:" in line
        ),
        None,
    )
    if status is None:
        return lines[0] if len(lines) == 1 else f"{lines[0]} ({lines[-1]})"
    answer = f"{status}: {response}" if response else status
    return f"{lines[0].rstrip(':')}: the Go module proxy answered {answer}"


def webhook_unavailable_reason() -> str | None:
    """Return why numaflow-rdma's webhook cannot run here, or None when it can."""
    import importlib

    try:
        command = importlib.import_module("numaflow_rdma.webhook.command")
    except ImportError as error:
        return f"numaflow_rdma.webhook.command cannot be imported: {error}"
    if not hasattr(command, "run"):
        return "numaflow_rdma.webhook.command has no run function"
    return None


def measure(
    servers: dict[str, tuple[Worker, str]],
    reviews: list[tuple[str, bytes]],
    settings: Settings,
    context: ssl.SSLContext,
) -> list[dict[str, Any]]:
    """Send the corpus to every server at every rate; return one row per server and rate."""
    rows = []
    for rate in settings.admission_rates:
        for name, (worker, url) in servers.items():
            before = cpu_times(worker.pid)
            started = time.monotonic()
            result = asyncio.run(
                run_rate(url, reviews, rate, settings.admission_duration, context, warmup=1.0)
            )
            wall = time.monotonic() - started
            used = cpu_times(worker.pid)
            summary = result.summary()
            server_cpu = used.total - before.total
            summary.update(
                {
                    "server": name,
                    "server_cpu_s": server_cpu,
                    "server_cpu_ms_per_request": 1000 * server_cpu / max(1, result.scheduled),
                    "server_cores_busy": server_cpu / wall if wall > 0 else 0.0,
                }
            )
            logger.info(
                "%s at %d/s: %.0f/s held, p50 %.2f ms, p99 %.2f ms, %d errors",
                name,
                rate,
                summary["throughput_per_s"],
                summary["latency_ms"]["p50"],
                summary["latency_ms"]["p99"],
                summary["error_count"],
            )
            rows.append(summary)
            time.sleep(0.5)
    return rows


def profile_webhook(
    worker: Worker,
    url: str,
    reviews: list[tuple[str, bytes]],
    seconds: float,
    context: ssl.SSLContext,
    folder: Path,
) -> list[tuple[str, float]]:
    """Sample the webhook's processes with py-spy during an extra, unmeasured run at 200/s."""
    output = folder / "webhook-profile.txt"
    sampler = profiling.start_profile(worker.pid, seconds, output)
    if sampler is None:
        return []
    asyncio.run(run_rate(url, reviews, PROFILE_RATE, seconds, context, warmup=0.5))
    return profiling.finish_profile(sampler, output, timeout=seconds + 30)


def patch_operations(url: str, review: tuple[str, bytes], context: ssl.SSLContext) -> int:
    """Return how many JSON Patch operations one server returns for one review."""
    request = urllib.request.Request(
        url, data=review[1], headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        answer = json.load(response)["response"]
    patch = answer.get("patch")
    return len(json.loads(base64.b64decode(patch))) if patch else 0


def run(settings: Settings) -> dict[str, Any]:
    """Start the API server and both webhooks, then measure every rate."""
    from numaflow_rdma.controlplane import binaries
    from numaflow_rdma.controlplane.apiserver import KubeApiServer
    from numaflow_rdma.controlplane.etcd import Etcd

    webhook_reason = webhook_unavailable_reason()
    injector_reason = injector_unavailable_reason()
    if webhook_reason and injector_reason:
        raise BenchmarkSkipped(f"neither webhook can run: {webhook_reason}; {injector_reason}")
    pods = cluster.vertex_pods()
    reviews = admission_reviews(pods, NAMESPACE)

    folder = Path(tempfile.mkdtemp(prefix="numaflow-rdma-bench-admission-"))
    etcd = Etcd("etcd-api", folder)
    apiserver: KubeApiServer | None = None
    workers: list[Worker] = []
    try:
        etcd.start()
        etcd.wait_ready()
        apiserver = KubeApiServer(etcd.endpoint, folder)
        apiserver.start()
        apiserver.wait_ready()
        api_client = apiserver.api_client()
        cluster.create_opted_in_namespace(api_client, NAMESPACE)
        cluster.install_network(api_client, NAMESPACE)
        tls = TlsFiles(folder)

        servers: dict[str, tuple[Worker, str]] = {}
        start_errors: dict[str, str] = {}
        if webhook_reason is None:
            # A webhook that imports but does not start is a failure, not a skip.
            servers[WEBHOOK] = start_webhook(folder, tls, apiserver.kubeconfig_path)
        if injector_reason is None:
            try:
                servers[INJECTOR] = start_injector(
                    binaries.ensure("network-resources-injector"),
                    folder,
                    tls,
                    api_client,
                    apiserver.port,
                    apiserver.ca_path,
                )
            except WorkerError as error:
                start_errors[INJECTOR] = str(error)
        workers = [worker for worker, _ in servers.values()]
        if not servers:
            raise BenchmarkSkipped("no webhook started: " + "; ".join(start_errors.values()))

        with stopping(*workers):
            context = tls.client_context()
            operations = {
                name: patch_operations(url, reviews[0], context)
                for name, (_, url) in servers.items()
            }
            rows = measure(servers, reviews, settings, context)
            profile: list[tuple[str, float]] = []
            if WEBHOOK in servers and not settings.smoke:
                worker, url = servers[WEBHOOK]
                profile = profile_webhook(worker, url, reviews, PROFILE_SECONDS, context, folder)
        api_client.close()
    finally:
        if apiserver is not None:
            apiserver.stop()
        etcd.stop()
        shutil.rmtree(folder, ignore_errors=True)

    unavailable = {}
    if webhook_reason:
        unavailable[WEBHOOK] = webhook_reason
    if injector_reason:
        unavailable[INJECTOR] = injector_reason
    unavailable.update(start_errors)
    return {
        "rows": rows,
        "corpus_size": len(reviews),
        "corpus_pods": sorted({pod["metadata"]["name"] for pod in pods}),
        "duration_s": settings.admission_duration,
        "unavailable": unavailable,
        "patch_operations": operations,
        "profile": profile,
    }
