"""A simulated RDMA network: one network namespace per pod on a shared bridge.

No Multus, CNI or RDMA NIC exists where the tests and the demo run, so this
module builds what Multus would attach: a Linux bridge in the host's network
namespace holding the gateway address, and for each pod a network namespace
with a veth pair whose inner end is the pod's RDMA interface (``net1``) with an
address in 198.18.0.0/15, the range RFC 2544 reserves for benchmarking
networks. Processes started with ``PodNetwork.command`` run inside the pod's
namespace; they reach servers of the host, such as CoreDNS, at the gateway
address.

Everything is named with a random prefix, removed by ``close`` (also after a
partial set-up), and nothing outside 198.18.0.0/15 is ever addressed. Needs
root and iproute2.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

SIMULATED_NETWORK = ipaddress.ip_network("198.18.0.0/15")
POD_INTERFACE = "net1"


class NetworkSimulationError(RuntimeError):
    """The simulated network could not be set up."""


# The folder in which "ip netns add" creates one file per namespace.
NAMESPACE_DIRECTORY = Path("/run/netns")


def _ip(*args: str, namespace: str | None = None) -> None:
    command = ["ip", *(["-n", namespace] if namespace else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NetworkSimulationError(f"'{' '.join(command)}' failed: {result.stderr.strip()}")


def check_supported() -> str | None:
    """Return why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root; run as root (for example with sudo)"
    if shutil.which("ip") is None:
        return "the 'ip' command is missing; install iproute2"
    return None


@dataclass(frozen=True)
class PodNetwork:
    """One pod's network namespace and its address on the simulated network."""

    namespace: str
    interface: str
    address: str
    host_veth: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """Return ``argv`` wrapped to run inside this pod's network namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]


class SimulatedNetwork:
    """A bridge with a gateway address and the pod namespaces attached to it."""

    def __init__(self, prefix_length: int = 15) -> None:
        self.tag = secrets.token_hex(3)
        self.bridge = f"nfr{self.tag}"
        self._hosts = SIMULATED_NETWORK.hosts()
        self.gateway = str(next(self._hosts))
        self.prefix_length = prefix_length
        self.pods: dict[str, PodNetwork] = {}
        self._index = 0
        self._bridge_up = False

    def open(self) -> SimulatedNetwork:
        """Create the bridge with the gateway address."""
        reason = check_supported()
        if reason:
            raise NetworkSimulationError(reason)
        _ip("link", "add", self.bridge, "type", "bridge")
        self._bridge_up = True
        _ip("addr", "add", f"{self.gateway}/{self.prefix_length}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        logger.info(
            "Created the simulated RDMA network.",
            extra={"bridge": self.bridge, "gateway": self.gateway},
        )
        return self

    def add_pod(self, pod: str) -> PodNetwork:
        """Create a namespace for ``pod`` with ``net1`` on the bridge, and return it."""
        self._index += 1
        namespace = f"nfr-{self.tag}-{self._index}"
        host_veth = f"nfr{self.tag}h{self._index}"
        pod_veth = f"nfr{self.tag}p{self._index}"
        address = str(next(self._hosts))

        # First the namespace with its own loopback, then the veth pair across.
        # The pod is recorded before the namespace exists, so close() removes
        # it even when a signal interrupts this method right after "netns add".
        network = PodNetwork(namespace, POD_INTERFACE, address, host_veth)
        self.pods[pod] = network
        _ip("netns", "add", namespace)
        _ip("link", "set", "lo", "up", namespace=namespace)
        _ip("link", "add", host_veth, "type", "veth", "peer", "name", pod_veth)
        _ip("link", "set", pod_veth, "netns", namespace)
        _ip("link", "set", host_veth, "master", self.bridge)
        _ip("link", "set", host_veth, "up")

        # Then the pod's end becomes net1 with its address, as Multus would name it.
        _ip("link", "set", pod_veth, "name", POD_INTERFACE, namespace=namespace)
        _ip("addr", "add", f"{address}/{self.prefix_length}", "dev", POD_INTERFACE, namespace=namespace)
        _ip("link", "set", POD_INTERFACE, "up", namespace=namespace)
        return network

    def set_link(self, pod: str, up: bool) -> None:
        """Take a pod's link down or bring it up, as a cable pull would."""
        _ip("link", "set", self.pods[pod].host_veth, "up" if up else "down")

    def remove_pod(self, pod: str) -> None:
        """Delete a pod's veth pair and namespace."""
        network = self.pods.pop(pod, None)
        if network is None or not (NAMESPACE_DIRECTORY / network.namespace).exists():
            return
        # The kernel destroys a deleted namespace, and the veth end inside it,
        # in the background, so the pair is deleted first and at once.
        with contextlib.suppress(NetworkSimulationError):
            _ip("link", "delete", network.host_veth)
        try:
            _ip("netns", "delete", network.namespace)
        except NetworkSimulationError as error:
            logger.warning("Removing a pod namespace failed: %s", error)

    def close(self) -> None:
        """Remove every pod namespace and the bridge."""
        for pod in list(self.pods):
            self.remove_pod(pod)
        if self._bridge_up:
            try:
                _ip("link", "delete", self.bridge)
            except NetworkSimulationError as error:
                logger.warning("Removing the bridge failed: %s", error)
            self._bridge_up = False

    def __enter__(self) -> SimulatedNetwork:
        try:
            return self.open()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
