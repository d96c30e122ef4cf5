"""One demo run from start to clean-up: ``run_demo``.

The steps, in order:

1. build or find the control-plane programs and create the simulated RDMA network;
2. start the control plane, the webhook and dnssync;
3. label a namespace, create Numaflow's pods unchanged, and show what the webhook stored;
4. play scheduler, Multus and kubelet for each vertex pod, and check DNS;
5. stream frames from ``decode`` to ``infer`` while one ``infer`` pod is
   deleted and replaced, then stop every UDF;
6. follow every frame through the journals.

On success, failure, Ctrl-C, SIGTERM or SIGHUP (anything short of SIGKILL),
``Demo.cleanup`` ends every process, network namespace and file the run made.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from numaflow_rdma import names
from numaflow_rdma.demo import accounting, summary
from numaflow_rdma.demo.cleanup import (
    child_processes,
    interrupt_on_signals,
    network_namespaces,
    signals_deferred,
)
from numaflow_rdma.demo.dnscheck import DnsCheck, DnsProbe
from numaflow_rdma.demo.journal import read_journal
from numaflow_rdma.demo.kubelet import RunningPod, SimulatedKubelet
from numaflow_rdma.demo.platform import NODE_NAME, Platform, check_prerequisites
from numaflow_rdma.demo.pods import (
    other_pods,
    pod_report,
    replacement_pod,
    vertex_of,
    vertex_pods,
)
from numaflow_rdma.demo.progress import DemoError, Progress
from numaflow_rdma.demo.result import DemoResult, Leftovers, PodReport, ReplacementReport
from numaflow_rdma.demo.settings import (
    PIPELINE,
    RECEIVING_VERTEX,
    SENDING_VERTEX,
    SINK_VERTEX,
    DemoSettings,
)

logger = logging.getLogger(__name__)

# Receivers start before the senders that look them up; senders stop first.
START_ORDER = (SINK_VERTEX, RECEIVING_VERTEX)
STOP_ORDER = (SENDING_VERTEX, RECEIVING_VERTEX, SINK_VERTEX)
VERTICES = (SENDING_VERTEX, RECEIVING_VERTEX, SINK_VERTEX)
# Seconds of recent frames that decide which infer pod is the busiest, and so deleted.
BUSY_WINDOW = 2.0
# Seconds a UDF may take to stop after SIGTERM before it is killed.
STOP_GRACE = 10.0
# Seconds the receivers get after the last frame was sent, before they are stopped.
DRAIN_SECONDS = 1.0


class Demo:
    """The state of one run; ``run`` does the steps, ``cleanup`` undoes them."""

    def __init__(self, settings: DemoSettings, progress: Progress) -> None:
        self.settings = settings
        self.progress = progress
        # Processes that already ran when the demo began (in a test run, the
        # servers of other tests) are not the demo's to end or report.
        self._processes_before = set(child_processes())
        self.work_dir: Path | None = None
        self._owns_work_dir = settings.work_dir is None and not settings.keep_work_dir
        self.platform: Platform | None = None
        self.kubelet: SimulatedKubelet | None = None
        self.probe: DnsProbe | None = None
        self.backend = "tcp"
        self.reports: dict[str, PodReport] = {}
        self.stored: dict[str, dict[str, Any]] = {}
        self.dns_checks: list[DnsCheck] = []
        self.stream_started = 0.0
        self.deleted_at: dict[str, float] = {}
        self.replacement: ReplacementReport | None = None
        self._network_prefix = ""

    # Set-up.

    def _make_work_dir(self) -> Path:
        if self.settings.work_dir is not None:
            folder = self.settings.work_dir / time.strftime("run-%Y%m%d-%H%M%S")
            folder.mkdir(parents=True, exist_ok=False)
        else:
            folder = Path(tempfile.mkdtemp(prefix="numaflow-rdma-demo-"))
        return folder

    def _require(self) -> tuple[Platform, SimulatedKubelet, DnsProbe]:
        assert self.platform is not None
        assert self.kubelet is not None
        assert self.probe is not None
        return self.platform, self.kubelet, self.probe

    def start_platform(self) -> None:
        """Build what is missing and start the network, control plane, webhook and dnssync."""
        from numaflow_rdma.transport.backends import resolve_backend_name

        settings = self.settings
        step = self.progress.step
        self.backend = resolve_backend_name(settings.backend)
        self.work_dir = self._make_work_dir()
        self.progress.say(f"Work folder: {self.work_dir}")
        platform = Platform(
            self.work_dir, self.progress, settings.record_ttl, settings.startup_timeout
        )
        self.platform = platform

        with step(
            "Build or find etcd, kube-apiserver and CoreDNS",
            "install Go 1.24 or later and check that the Go module proxy is reachable, or run "
            "hack/setup.sh, which builds them",
        ):
            platform.build_programs()
        with step(
            "Create the simulated RDMA network, a bridge with gateway 198.18.0.1",
            "check that this machine allows new bridges and network namespaces "
            "(a container needs CAP_NET_ADMIN and CAP_SYS_ADMIN)",
        ):
            network = platform.open_network()
            self._network_prefix = f"nfr-{network.tag}-"
        with step(
            "Start the control plane: etcd for the API server, etcd for DNS records, "
            "kube-apiserver and CoreDNS",
            f"read the logs under {self.work_dir / 'controlplane'}; a port clash goes away on "
            "a second try",
        ):
            platform.start_control_plane()
        assert platform.plane is not None and platform.plane.coredns is not None
        self.probe = DnsProbe(network.gateway, platform.plane.coredns.port)
        with step(
            f"Create the RDMA network {platform.network_name} (a NetworkAttachmentDefinition)"
        ):
            platform.create_rdma_network()
        with step(
            "Start the webhook (numaflow-rdma webhook, HTTPS) and register it with a "
            "MutatingWebhookConfiguration",
            f"read the webhook's log under {self.work_dir / 'webhook'}",
        ):
            url = platform.start_webhook()
            self.progress.say(f"The API server calls the webhook at {url}/mutate.")
        with step(
            "Start dnssync (numaflow-rdma dnssync)",
            f"read dnssync's log under {self.work_dir / 'dnssync'}",
        ):
            platform.start_dnssync()

        assert platform.kube is not None
        self.kubelet = SimulatedKubelet(
            platform.kube,
            network,
            platform.network_name,
            NODE_NAME,
            self.work_dir,
            self._udf_arguments(),
        )

    def _udf_arguments(self) -> dict[str, list[str]]:
        assert self.platform is not None
        settings = self.settings
        common = ["--nameserver", self.platform.nameserver, "--backend", self.backend]
        decode_replicas = sum(
            1
            for pod in vertex_pods(PIPELINE, settings.layout, settings.namespace)
            if vertex_of(pod) == SENDING_VERTEX
        )
        return {
            SENDING_VERTEX: [
                *common,
                "--cameras", str(settings.cameras),
                "--replicas", str(decode_replicas),
                "--fps", str(settings.fps),
                "--frames", str(settings.frames_each_camera),
                "--clip-frames", str(settings.clip_frames),
            ],
            RECEIVING_VERTEX: common,
            SINK_VERTEX: common,
        }  # fmt: skip

    # Namespace and pods.

    def label_namespace(self) -> None:
        """Create the pipeline's namespace, label it for injection, and wait for the webhook."""
        platform, _, _ = self._require()
        assert platform.kube is not None
        namespace = self.settings.namespace
        label = f"{names.INJECT_LABEL}={names.INJECT_LABEL_ENABLED}"
        with self.progress.step(f"Label namespace {namespace} with {label}"):
            platform.kube.create_namespace(namespace, {})
            platform.kube.label_namespace(
                namespace, {names.INJECT_LABEL: names.INJECT_LABEL_ENABLED}
            )
            self._wait_for_webhook()

    def _wait_for_webhook(self) -> None:
        """Dry-run a vertex pod until the API server calls the webhook, which takes a moment."""
        platform, _, _ = self._require()
        assert platform.kube is not None
        probe_pod = vertex_pods(PIPELINE, self.settings.layout, self.settings.namespace)[0]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stored = platform.kube.create_pod(probe_pod, dry_run=True)
            if names.INJECTED_ANNOTATION in (stored["metadata"].get("annotations") or {}):
                return
            time.sleep(0.3)
        raise TimeoutError("the API server did not call the webhook within 30 s")

    def create_pods(self) -> None:
        """Create Numaflow's pods unchanged and record what the API server stored."""
        platform, _, _ = self._require()
        assert platform.kube is not None
        settings = self.settings
        with self.progress.step(
            f"Create the pods of pipeline '{PIPELINE}' exactly as Numaflow's controller builds "
            "them, and Numaflow pods that are not vertex pods",
            "read the webhook's log; the API server rejects pods when the webhook fails",
        ):
            for pod in [
                *other_pods(settings.layout, settings.namespace),
                *vertex_pods(PIPELINE, settings.layout, settings.namespace),
            ]:
                stored = platform.kube.create_pod(pod)
                self.stored[stored["metadata"]["name"]] = stored
                self.reports[stored["metadata"]["name"]] = pod_report(stored)
        self.progress.say("What the webhook stored on each pod:")
        for line in summary.injection_lines(list(self.reports.values())):
            self.progress.say(f"  {line}")

    def _vertex_pod_names(self, vertex: str) -> list[str]:
        return [
            name
            for name, report in self.reports.items()
            if report.vertex == vertex and not report.deleted
        ]

    def start_vertex_pods(self, vertex: str) -> list[RunningPod]:
        """Play scheduler, Multus and kubelet for every pod of ``vertex``; return once all are Ready."""
        _, kubelet, _ = self._require()
        namespace = self.settings.namespace
        started = []
        for name in self._vertex_pod_names(vertex):
            kubelet.schedule(namespace, name)
            started.append(kubelet.start(namespace, name, vertex))
        for pod in started:
            kubelet.wait_serving(pod, self.settings.startup_timeout)
        for pod in started:
            kubelet.mark_ready(pod)
            self.reports[pod.name].address = pod.network.address
            self.progress.say(
                f"  {pod.name}: network namespace {pod.network.namespace}, net1 "
                f"{pod.network.address}, UDF PID {pod.process.pid}, Ready"
            )
        return started

    def check_dns(self, step: str, timeout: float = 15.0) -> list[DnsCheck]:
        """Wait until DNS agrees with the Ready pods, print the answers, and keep them."""
        platform, _, probe = self._require()
        assert platform.kube is not None
        checks = probe.wait_until_agreed(
            platform.kube,
            self.settings.namespace,
            PIPELINE,
            VERTICES,
            platform.network_name,
            step,
            timeout,
        )
        self.dns_checks.extend(checks)
        for check in checks:
            verdict = "as the Ready pods" if check.matches else f"but the Ready pods have {list(check.expected)}"
            self.progress.say(f"  DNS {check.name} -> {', '.join(check.answered) or '(no records)'} {verdict}")
        return checks

    # Streaming.

    def stream(self) -> None:
        """Start the decode UDFs and let them stream, replacing one infer pod midway."""
        settings = self.settings
        with self.progress.step(
            "Simulate scheduler, Multus and kubelet for the out and infer pods, and start their UDFs"
        ):
            for vertex in START_ORDER:
                self.start_vertex_pods(vertex)
        with self.progress.step(
            f"Start the decode UDFs: {settings.cameras} cameras at {settings.fps:g} frames per "
            f"second, {settings.frames_each_camera} frames each, over the {self.backend} backend"
        ):
            self.start_vertex_pods(SENDING_VERTEX)
            self.stream_started = time.time()
        self.progress.say("DNS answers from CoreDNS on the gateway, with every vertex pod Ready:")
        self.check_dns("every vertex pod Ready")

        if settings.replace:
            self._wait_streaming_until(self.stream_started + settings.replacement_time)
            self.replace_infer_pod()

        with self.progress.step("Let the cameras send their last frames"):
            self._wait_for_senders()
        time.sleep(DRAIN_SECONDS)
        with self.progress.step("Stop the UDFs, as the kubelet stops containers (SIGTERM)"):
            _, kubelet, _ = self._require()
            kubelet.stop_all(STOP_GRACE, STOP_ORDER)

    def _check_alive(self) -> None:
        platform, kubelet, _ = self._require()
        problems = platform.check_processes()
        if problems:
            raise DemoError(self.progress.current_step, "\n".join(problems))
        for pod in kubelet.pods.values():
            if pod.stopped_at is None and pod.process.pid is None and pod.vertex != SENDING_VERTEX:
                raise DemoError(
                    self.progress.current_step,
                    f"the UDF of {pod.name} exited; the end of its log ({pod.process.log_path}):\n"
                    f"{pod.process.log_tail()}",
                )

    def _wait_streaming_until(self, moment: float) -> None:
        while time.time() < moment:
            self._check_alive()
            time.sleep(min(0.2, max(0.0, moment - time.time())))

    def _wait_for_senders(self) -> None:
        _, kubelet, _ = self._require()
        senders = [pod for pod in kubelet.pods.values() if pod.vertex == SENDING_VERTEX]
        deadline = self.stream_started + 2 * self.settings.streaming_seconds + 30
        next_report = time.time() + 10
        while any(pod.process.pid is not None for pod in senders):
            self._check_alive()
            if time.time() > deadline:
                self.progress.say(
                    "The decode UDFs are far behind their frame rate; stopping them now."
                )
                return
            if time.time() > next_report:
                sent = sum(
                    1
                    for pod in senders
                    for event in read_journal(pod.journal)
                    if event.get("event") == "frame"
                )
                total = self.settings.cameras * self.settings.frames_each_camera
                self.progress.say(f"  {sent} of {total} frames produced")
                next_report = time.time() + 10
            time.sleep(0.2)

    def _busiest_receiver(self) -> RunningPod:
        """Return the running infer pod that received the most frames in the last seconds."""
        _, kubelet, _ = self._require()
        since = time.time() - BUSY_WINDOW
        running = [
            pod
            for pod in kubelet.pods.values()
            if pod.vertex == RECEIVING_VERTEX and pod.stopped_at is None
        ]

        def recent_frames(pod: RunningPod) -> int:
            return sum(
                1
                for event in read_journal(pod.journal)
                if event.get("event") == "frame" and float(event.get("time", 0)) >= since
            )

        return max(running, key=recent_frames)

    def replace_infer_pod(self) -> None:
        """Delete one infer pod and create the pod Numaflow would create in its place."""
        platform, kubelet, _ = self._require()
        assert platform.kube is not None
        settings = self.settings
        namespace = settings.namespace
        victim = self._busiest_receiver()
        victim_name = victim.name
        mode = (
            "at once, killing its UDF (grace period 0)"
            if settings.grace_period == 0
            else f"with a grace period of {settings.grace_period} s"
        )
        with self.progress.step(
            f"Delete {victim_name} ({victim.network.address}), the infer pod that receives the "
            f"most frames now, {mode}"
        ):
            self.deleted_at[victim_name] = time.time()
            if settings.link_down:
                self.progress.say(f"  Taking the network link of {victim_name} down first.")
                kubelet.network.set_link(victim_name, up=False)
            self.reports[victim_name].deleted = True
            platform.kube.delete_pod(namespace, victim_name, settings.grace_period)
            if settings.grace_period > 0:
                # The pod is Terminating: DNS drops it while its UDF still drains, as in a cluster.
                self.check_dns(f"while {victim_name} is terminating")
                kubelet.stop(victim, settings.grace_period)
                # The kubelet removes the pod for good once its containers are gone.
                platform.kube.delete_pod(namespace, victim_name, 0, uid=victim.uid)
            else:
                kubelet.stop(victim, 0, kill=True)
        deleted_offset = self.deleted_at[victim_name] - self.stream_started
        self.check_dns(f"after deleting {victim_name}")

        with self.progress.step(
            "Create the replacement, as Numaflow's vertex controller would: new name, new "
            "network namespace, new address"
        ):
            pod = replacement_pod(PIPELINE, settings.layout, namespace, self.stored[victim_name])
            stored = platform.kube.create_pod(pod)
            name = stored["metadata"]["name"]
            self.stored[name] = stored
            report = pod_report(stored)
            report.replaces = victim_name
            self.reports[name] = report
            for line in summary.injection_lines([report]):
                self.progress.say(f"  {line}")
            kubelet.schedule(namespace, name)
            running = kubelet.start(namespace, name, RECEIVING_VERTEX)
            kubelet.wait_serving(running, settings.startup_timeout)
            kubelet.mark_ready(running)
            report.address = running.network.address
        self.check_dns(f"after {name} is Ready")
        self.replacement = ReplacementReport(
            deleted_pod=victim_name,
            deleted_address=victim.network.address,
            replacement_pod=name,
            replacement_address=running.network.address,
            deleted_at=deleted_offset,
            listed_at=time.time() - self.stream_started,
        )

    # Results.

    def collect(self) -> DemoResult:
        """Read every journal and build the result."""
        _, kubelet, _ = self._require()
        settings = self.settings
        runs = {
            name: accounting.UdfRun(
                pod=name,
                vertex=pod.vertex,
                address=pod.network.address,
                events=read_journal(pod.journal),
                deleted_at=self.deleted_at.get(name),
            )
            for name, pod in kubelet.pods.items()
        }
        senders = [run for run in runs.values() if run.vertex == SENDING_VERTEX]
        receivers = [run for run in runs.values() if run.vertex == RECEIVING_VERTEX]
        sinks = [run for run in runs.values() if run.vertex == SINK_VERTEX]

        result = DemoResult(
            backend=self.backend,
            namespace=settings.namespace,
            pipeline=PIPELINE,
            cameras=settings.cameras,
            fps=settings.fps,
            pods=list(self.reports.values()),
            dns_checks=list(self.dns_checks),
            accounting=accounting.account_frames(senders, receivers),
            replicas=accounting.replica_reports([*senders, *receivers, *sinks]),
            streams=accounting.stream_paths(receivers),
            work_dir=str(self.work_dir),
            kept_work_dir=not self._owns_work_dir,
            network_prefix=self._network_prefix,
        )
        result.results_received = sum(
            1 for run in sinks for event in run.events if event.get("event") == "result"
        )
        first_sent = min(
            (float(event["time"]) for run in senders for event in run.frames), default=0.0
        )
        last_received = max(
            (float(event["time"]) for run in receivers for event in run.frames), default=0.0
        )
        result.streaming_seconds = max(0.0, last_received - first_sent)
        if self.replacement is not None:
            result.replacement = self._replacement_report(runs, result)
        return result

    def _replacement_report(
        self, runs: dict[str, accounting.UdfRun], result: DemoResult
    ) -> ReplacementReport:
        assert self.replacement is not None
        report = self.replacement
        replacement = runs.get(report.replacement_pod)
        if replacement is not None and replacement.frames:
            report.frames_to_replacement = len(replacement.frames)
            report.first_frame_at = (
                min(float(event["time"]) for event in replacement.frames) - self.stream_started
            )
        for path in result.streams:
            pods = [run[0] for run in path.runs]
            if report.deleted_pod in pods[:-1]:
                report.streams_moved[path.stream] = pods[pods.index(report.deleted_pod) + 1]
        return report

    # Clean-up.

    def cleanup(self) -> Leftovers:
        """End every UDF, platform process and namespace, remove the work folder; report leftovers."""
        if self.kubelet is not None:
            self.kubelet.close()
        if self.platform is not None:
            self.platform.close()
        leftovers = Leftovers(
            processes=[line for line in child_processes() if line not in self._processes_before]
        )
        if self._network_prefix:
            leftovers.network_namespaces = network_namespaces(self._network_prefix)
        if self.work_dir is not None and self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            if self.work_dir.exists():
                leftovers.work_dir = str(self.work_dir)
        return leftovers


def run_demo(settings: DemoSettings, progress: Progress | None = None) -> DemoResult:
    """Run the whole demo and return what it found; clean up on success, failure and Ctrl-C.

    Raises DemoError naming the failed step, SettingsError for invalid
    settings, and KeyboardInterrupt on Ctrl-C, SIGTERM or SIGHUP.
    """
    settings.validate()
    progress = progress or Progress()
    check_prerequisites(settings)
    demo = Demo(settings, progress)
    result: DemoResult | None = None
    with interrupt_on_signals():
        try:
            demo.start_platform()
            demo.label_namespace()
            demo.create_pods()
            demo.stream()
            result = demo.collect()
        except (DemoError, KeyboardInterrupt):
            raise
        except Exception as error:
            # Steps outside a Progress.step block still fail with the step last announced.
            raise DemoError(progress.current_step, f"{type(error).__name__}: {error}") from error
        finally:
            with signals_deferred(progress):
                progress.say("Cleaning up: UDF processes, network namespaces, platform processes.")
                leftovers = demo.cleanup()
                if leftovers.clean:
                    progress.say("Clean-up done: no process, network namespace or file is left.")
                else:
                    progress.say(f"Clean-up left something behind: {leftovers}")
    result.leftovers = leftovers
    return result
