"""The work of the scheduler, the kubelet and Multus for each vertex pod, simulated.

None of them runs here, so for each pod the demo:

1. binds it to a node through the binding subresource, as the scheduler does;
2. creates a network namespace with ``net1`` on the simulated RDMA network,
   and writes Multus's ``network-status`` annotation through the pods/status
   subresource: the cluster network's entry (``default: true``, an address
   that exists nowhere, because no cluster network runs here) and the entry
   of the RDMA NetworkAttachmentDefinition with the pod's address;
3. starts the UDF process in that namespace with the container's environment
   as the kubelet would build it from the stored pod, and the downward-API
   annotations file written from the stored pod's annotations;
4. marks the pod Ready once the UDF reports it is serving, as a readiness
   probe would.

Stopping follows the kubelet: SIGTERM, then SIGKILL when the grace period
is over, then the network namespace goes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from numaflow_rdma import names
from numaflow_rdma.controlplane.network import PodNetwork, SimulatedNetwork
from numaflow_rdma.controlplane.process import ManagedProcess
from numaflow_rdma.demo import containers
from numaflow_rdma.demo.journal import last_event, read_journal
from numaflow_rdma.demo.kube import DemoKube

logger = logging.getLogger(__name__)

# The cluster network's entry of network-status needs an address; nothing is ever sent to it.
CLUSTER_NETWORK = "k8s-pod-network"
CLUSTER_SUBNET = "10.244.0."

# Host variables the UDF processes get besides the container's own.
_PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ")


class PodStartError(RuntimeError):
    """A UDF process that exited or did not report ready in time."""


@dataclass
class RunningPod:
    """A vertex pod that the simulated kubelet runs."""

    name: str
    namespace: str
    vertex: str
    uid: str
    network: PodNetwork
    process: ManagedProcess
    journal: Path
    folder: Path
    environment: dict[str, str]
    cluster_address: str
    started_at: float = 0.0
    stopped_at: float | None = None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _interface_mac(network: PodNetwork) -> str:
    result = subprocess.run(
        ["ip", "-j", "-n", network.namespace, "link", "show", network.interface],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    if result.returncode != 0:
        return ""
    links = json.loads(result.stdout or "[]")
    return str(links[0].get("address", "")) if links else ""


def network_status(
    network_name: str, network: PodNetwork, mac: str, cluster_address: str
) -> list[dict[str, Any]]:
    """Return the network-status entries as Multus writes them: cluster network first."""
    return [
        {
            "name": CLUSTER_NETWORK,
            "interface": "eth0",
            "ips": [cluster_address],
            "default": True,
            "dns": {},
        },
        {
            "name": network_name,
            "interface": network.interface,
            "ips": [network.address],
            "mac": mac,
            "dns": {},
        },
    ]


class SimulatedKubelet:
    """Runs vertex pods as network namespaces with one UDF process each."""

    def __init__(
        self,
        kube: DemoKube,
        network: SimulatedNetwork,
        network_name: str,
        node: str,
        work_dir: Path,
        udf_arguments: dict[str, list[str]],
    ) -> None:
        self.kube = kube
        self.network = network
        self.network_name = network_name
        self.node = node
        self.work_dir = work_dir
        self.udf_arguments = udf_arguments
        self.capacity = containers.NodeCapacity.of_this_machine()
        self.pods: dict[str, RunningPod] = {}
        self._cluster_index = 1

    def schedule(self, namespace: str, name: str) -> None:
        """Bind the pod to this node, as the scheduler would."""
        self.kube.bind_pod(namespace, name, self.node)

    def attach_network(self, namespace: str, name: str) -> tuple[PodNetwork, str, dict[str, Any]]:
        """Create the pod's network namespace and write network-status; return the stored pod."""
        network = self.network.add_pod(name)
        self._cluster_index += 1
        cluster_address = f"{CLUSTER_SUBNET}{self._cluster_index}"
        status = network_status(self.network_name, network, _interface_mac(network), cluster_address)
        stored = self.kube.patch_pod_status(
            namespace,
            name,
            {
                "metadata": {
                    "annotations": {
                        names.MULTUS_NETWORK_STATUS_ANNOTATION: json.dumps(status, indent=4)
                    }
                }
            },
        )
        return network, cluster_address, stored

    def start(self, namespace: str, name: str, vertex: str) -> RunningPod:
        """Give the pod its network, start its UDF, and return once it is serving."""
        network, cluster_address, stored = self.attach_network(namespace, name)
        folder = self.work_dir / "pods" / name
        folder.mkdir(parents=True, exist_ok=True)

        # The container's view of the pod, from what the API server stored.
        container = containers.user_container(stored)
        environment = containers.container_environment(
            stored, container, self.capacity, read_object=self._read_object
        )
        mounted = containers.write_downward_volumes(stored, container, folder / "volumes")
        environment = containers.remap_mount_paths(environment, mounted)

        journal = folder / "journal.jsonl"
        process_environment = {
            key: os.environ[key] for key in _PASSED_THROUGH if key in os.environ
        }
        process_environment.update(environment)
        command = network.command(
            [
                "env",
                "-i",
                *(f"{key}={value}" for key, value in process_environment.items()),
                sys.executable,
                "-m",
                "numaflow_rdma.demo.udf",
                vertex,
                "--journal",
                str(journal),
                *self.udf_arguments.get(vertex, []),
            ]
        )
        process = ManagedProcess(f"udf {name}", command, folder / "udf.log")
        pod = RunningPod(
            name=name,
            namespace=namespace,
            vertex=vertex,
            uid=str(stored["metadata"].get("uid", "")),
            network=network,
            process=process,
            journal=journal,
            folder=folder,
            environment=environment,
            cluster_address=cluster_address,
        )
        self.pods[name] = pod
        process.start()
        pod.started_at = time.time()
        return pod

    def wait_serving(self, pod: RunningPod, timeout: float) -> None:
        """Wait until the UDF journals ``ready``; raise PodStartError if it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = read_journal(pod.journal)
            error = last_event(events, "error")
            if error is not None:
                raise PodStartError(
                    f"the UDF of {pod.name} failed: {error.get('message')}; its log is "
                    f"{pod.process.log_path}:\n{pod.process.log_tail()}"
                )
            if last_event(events, "ready") is not None:
                return
            if pod.process.pid is None:
                raise PodStartError(
                    f"the UDF of {pod.name} exited before it was ready; its log is "
                    f"{pod.process.log_path}:\n{pod.process.log_tail()}"
                )
            time.sleep(0.1)
        raise PodStartError(
            f"the UDF of {pod.name} was not ready after {timeout:.0f} s; its log is "
            f"{pod.process.log_path}:\n{pod.process.log_tail()}"
        )

    def mark_ready(self, pod: RunningPod) -> dict[str, Any]:
        """Write phase Running and the Ready condition, as the kubelet does; return the stored pod."""
        now = _now()
        conditions = [
            {"type": kind, "status": "True", "lastTransitionTime": now}
            for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ]
        return self.kube.patch_pod_status(
            pod.namespace,
            pod.name,
            {
                "status": {
                    "phase": "Running",
                    "conditions": conditions,
                    "podIP": pod.cluster_address,
                    "podIPs": [{"ip": pod.cluster_address}],
                    "hostIP": "127.0.0.1",
                    "startTime": now,
                }
            },
        )

    def stop(self, pod: RunningPod, grace_period: float, kill: bool = False) -> None:
        """Stop the UDF (SIGKILL at once with ``kill``) and remove the pod's network namespace."""
        try:
            if kill:
                pod.process.kill()
            else:
                pod.process.stop(grace=max(grace_period, 0.1))
        finally:
            pod.stopped_at = time.time()
            self.network.remove_pod(pod.name)

    def stop_all(self, grace_period: float, vertices: tuple[str, ...]) -> None:
        """Stop the running pods of ``vertices`` in that order, each vertex's pods together."""
        for vertex in vertices:
            running = [
                pod
                for pod in self.pods.values()
                if pod.vertex == vertex and pod.stopped_at is None
            ]
            # Signal them all first, so the pods of one vertex drain side by side.
            for pod in running:
                if pod.process.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pod.process.pid, signal.SIGTERM)
            for pod in running:
                self.stop(pod, grace_period)

    def close(self) -> None:
        """Kill every UDF still running and remove every pod network namespace."""
        for pod in self.pods.values():
            if pod.stopped_at is None:
                try:
                    self.stop(pod, 0, kill=True)
                except Exception:
                    logger.exception("Stopping the UDF of %s failed.", pod.name)

    def _read_object(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        from numaflow_rdma.dnssync.kube import KubeApiError

        try:
            return self.kube.client.request("GET", f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        except KubeApiError as error:
            if error.status == 404:
                raise LookupError(f"{kind} {namespace}/{name} not found") from error
            raise
