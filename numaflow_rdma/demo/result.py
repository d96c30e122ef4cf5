"""The structured outcome of a demo run, which the command prints and the tests inspect."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from numaflow_rdma.demo.dnscheck import DnsCheck


@dataclass
class PodReport:
    """One pod the demo created, as the API server stored it."""

    name: str
    namespace: str
    vertex: str | None
    """The Numaflow vertex; None for pods that are not pipeline vertex pods."""
    component: str
    """Numaflow's ``app.kubernetes.io/component`` label: vertex, daemon, job and so on."""
    injected: dict[str, Any] | None
    """The webhook's record annotation, parsed; None when the webhook left the pod alone."""
    networks: str | None
    """The Multus networks annotation."""
    rdma_env: dict[str, str]
    """The ``NUMAFLOW_RDMA_*`` variables of the user container."""
    resource_limits: dict[str, str]
    """Limits of the user container other than CPU and memory."""
    capabilities: list[str]
    """Capabilities added to the user container."""
    podinfo_volume: bool
    """Whether the pod has the webhook's downward-API volume."""
    address: str | None = None
    """The RDMA address the simulated Multus gave the pod."""
    replaces: str | None = None
    """The deleted pod this one replaces."""
    deleted: bool = False


@dataclass
class DropCounts:
    """Frames that did not reach a UDF, by cause."""

    by_reason: dict[str, int] = field(default_factory=dict)
    """Frames the sender dropped, by the transport's drop reason."""
    lost_in_flight: int = 0
    """Frames the sender sent that no receiver journalled: they went down with a deleted pod."""

    @property
    def total(self) -> int:
        """Return every frame counted as dropped."""
        return sum(self.by_reason.values()) + self.lost_in_flight


@dataclass
class FrameAccounting:
    """Every frame the ``decode`` UDFs produced, followed to where it ended."""

    produced: int = 0
    """Frames the decode UDFs handed to ``send``."""
    transmitted: int = 0
    """Frames that left a decode UDF."""
    received: int = 0
    """Distinct frames an ``infer`` UDF journalled."""
    dropped: DropCounts = field(default_factory=DropCounts)
    checksum_failures: int = 0
    duplicates: int = 0
    """Frames journalled more than once: at-most-once delivery forbids any."""
    unexpected: int = 0
    """Frames received that no decode UDF journalled as sent."""
    misrouted: int = 0
    """Frames received by another pod than the one the sender sent them to."""
    unexplained_losses: list[str] = field(default_factory=list)
    """Frames lost in flight to a pod that was never deleted, as ``camera#index -> pod``."""
    transport_counters: dict[str, Any] = field(default_factory=dict)
    """The senders' own counters summed: frames sent, dropped by reason, unconfirmed."""
    bytes_received: int = 0

    @property
    def balanced(self) -> bool:
        """Return True when produced frames equal received plus dropped ones."""
        return self.produced == self.received + self.dropped.total


@dataclass
class ReplicaReport:
    """The counts of one UDF process."""

    pod: str
    vertex: str
    address: str | None
    frames_sent: int = 0
    frames_dropped: int = 0
    frames_received: int = 0
    bytes_received: int = 0
    streams: list[str] = field(default_factory=list)
    mean_brightness: float | None = None
    results_sent: int = 0
    results_dropped: int = 0
    exited_cleanly: bool = False
    """Whether the UDF journalled its exit, which a killed one cannot."""


@dataclass
class StreamPath:
    """The receivers of one stream's frames in order, as runs of (pod, first index, last index, count)."""

    stream: str
    runs: list[tuple[str, int, int, int]]
    problem: str | None = None
    """The reason the path breaks the rule "one receiver while it lives", or None."""


@dataclass
class ReplacementReport:
    """The ``infer`` pod deleted midway and the one created in its place."""

    deleted_pod: str
    deleted_address: str | None
    replacement_pod: str
    replacement_address: str | None
    deleted_at: float
    """Seconds after streaming started."""
    listed_at: float | None = None
    """Seconds after streaming started when DNS listed the replacement."""
    first_frame_at: float | None = None
    """Seconds after streaming started when the replacement received its first frame."""
    frames_to_replacement: int = 0
    streams_moved: dict[str, str] = field(default_factory=dict)
    """Streams that were on the deleted pod, and the pod each went on to."""


@dataclass
class Leftovers:
    """The processes, namespaces and folder still there after clean-up; empty means none."""

    network_namespaces: list[str] = field(default_factory=list)
    processes: list[str] = field(default_factory=list)
    work_dir: str | None = None

    @property
    def clean(self) -> bool:
        """Return True when nothing was left behind."""
        return not self.network_namespaces and not self.processes and self.work_dir is None


@dataclass
class DemoResult:
    """Everything a demo run did and found."""

    backend: str
    namespace: str
    pipeline: str
    cameras: int
    fps: float
    pods: list[PodReport] = field(default_factory=list)
    dns_checks: list[DnsCheck] = field(default_factory=list)
    accounting: FrameAccounting = field(default_factory=FrameAccounting)
    replicas: list[ReplicaReport] = field(default_factory=list)
    streams: list[StreamPath] = field(default_factory=list)
    replacement: ReplacementReport | None = None
    streaming_seconds: float = 0.0
    """From the first frame sent to the last frame received."""
    results_received: int = 0
    """Brightness results the ``out`` UDF received."""
    leftovers: Leftovers = field(default_factory=Leftovers)
    work_dir: str = ""
    kept_work_dir: bool = False
    network_prefix: str = ""
    """The name prefix of every network namespace the run made."""

    def replicas_of(self, vertex: str) -> list[ReplicaReport]:
        """Return the reports of one vertex's UDF processes."""
        return [replica for replica in self.replicas if replica.vertex == vertex]

    @property
    def throughput_bytes_per_second(self) -> float:
        """Return bytes received by ``infer`` per second of streaming."""
        if self.streaming_seconds <= 0:
            return 0.0
        return self.accounting.bytes_received / self.streaming_seconds

    def problems(self) -> list[str]:
        """Return every way the run fell short of what it demonstrates; empty when none."""
        found = []

        # First, the pods and DNS.
        for pod in self.pods:
            if pod.vertex is not None and not pod.injected:
                found.append(f"vertex pod {pod.name} was stored without the webhook's injection")
            if pod.vertex is None and (pod.injected or pod.rdma_env):
                found.append(f"pod {pod.name}, not a vertex pod, was changed by the webhook")
        for check in self.dns_checks:
            if not check.matches:
                found.append(
                    f"DNS answered {list(check.answered)} for {check.name} at step '{check.step}', "
                    f"the Ready pods have {list(check.expected)}"
                )

        # Then the frames, the streams and the clean-up.
        accounting = self.accounting
        if accounting.produced == 0:
            found.append("the decode UDFs produced no frames")
        if not accounting.balanced:
            found.append(
                f"{accounting.produced} frames produced, but {accounting.received} received plus "
                f"{accounting.dropped.total} dropped"
            )
        if accounting.checksum_failures:
            found.append(f"{accounting.checksum_failures} frames failed their checksum")
        if accounting.duplicates:
            found.append(f"{accounting.duplicates} frames arrived more than once")
        if accounting.unexpected:
            found.append(f"{accounting.unexpected} frames arrived that no sender journalled")
        if accounting.misrouted:
            found.append(f"{accounting.misrouted} frames arrived at another pod than they were sent to")
        if accounting.unexplained_losses:
            found.append(
                f"{len(accounting.unexplained_losses)} frames were lost on the way to pods that "
                f"were never deleted: {', '.join(accounting.unexplained_losses[:5])}"
            )
        found.extend(
            f"stream {path.stream}: {path.problem}" for path in self.streams if path.problem
        )
        # Results of infer UDFs that were stopped normally must all reach out.
        expected_results = sum(
            replica.results_sent for replica in self.replicas_of("infer") if replica.exited_cleanly
        )
        if self.results_received < expected_results:
            found.append(
                f"out received {self.results_received} results, but the infer UDFs that ran to "
                f"the end sent {expected_results}"
            )
        if not self.leftovers.clean:
            found.append(f"left behind after clean-up: {self.leftovers}")
        return found
