"""The whole demo, shortened: the same flow ``numaflow-rdma demo`` runs, on real components.

One run is shared by the tests of this module: control plane, webhook over
TLS, dnssync, network namespaces, UDF processes streaming 1080p frames, and
the mid-run replacement of an ``infer`` pod.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from numaflow_rdma import names
from numaflow_rdma.demo.platform import NETWORK_NAME, RDMA_RESOURCE, SYSTEM_NAMESPACE
from numaflow_rdma.demo.progress import Progress
from numaflow_rdma.demo.result import DemoResult
from numaflow_rdma.demo.scenario import run_demo
from numaflow_rdma.demo.settings import DemoSettings
from numaflow_rdma.transport import DropReason

pytestmark = [
    pytest.mark.controlplane,
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="the demo makes network namespaces: needs root"),
]

# The replacement comes early, so new clips have several seconds to reach it.
# It is listed about 3 s after the deletion. A sender whose UCX check message
# is not delivered connects to it over TCP, after the 3 s check timeout.
# The deleted pod's link goes down first, so senders lose frames until they notice.
SETTINGS = DemoSettings(
    duration=16.0,
    fps=4.0,
    cameras=4,
    clip_seconds=1.0,
    replace_after=2.5,
    link_down=True,
    namespace="video-ci",
)


def network_namespaces(prefix: str) -> list[str]:
    """Return the network namespaces whose names start with ``prefix``."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    found = [line.split()[0] for line in listing.stdout.splitlines() if line.strip()]
    return [name for name in found if name.startswith(prefix)]


@pytest.fixture(scope="module")
def processes_before() -> set[int]:
    """Return the PIDs of this process's descendants before the demo, such as other tests' servers."""
    return {child.pid for child in psutil.Process().children(recursive=True)}


@pytest.fixture(scope="module")
def result(processes_before: set[int]) -> DemoResult:
    """Run the shortened demo once for the whole module."""
    return run_demo(SETTINGS, Progress(None))


def test_vertex_pods_stored_injected(result: DemoResult) -> None:
    vertex_pods = [pod for pod in result.pods if pod.vertex is not None]

    assert len(vertex_pods) == 7  # decode 2, infer 3, out 1, and the replacement
    for pod in vertex_pods:
        assert pod.vertex is not None
        assert pod.injected is not None, pod.name
        assert pod.networks == f"{SYSTEM_NAMESPACE}/{NETWORK_NAME}@net1", pod.name
        assert set(pod.rdma_env) == set(names.ALL_ENV), pod.name
        assert pod.rdma_env[names.ENV_VERTEX] == names.vertex_dns_name(
            pod.vertex, "video", SETTINGS.namespace
        )
        assert pod.resource_limits.get(RDMA_RESOURCE) == "1", pod.name
        assert "IPC_LOCK" in pod.capabilities, pod.name
        assert pod.podinfo_volume, pod.name


def test_other_pods_untouched(result: DemoResult) -> None:
    others = [pod for pod in result.pods if pod.vertex is None]

    assert others
    for pod in others:
        assert pod.injected is None, pod.name
        assert pod.networks is None, pod.name
        assert pod.rdma_env == {}, pod.name
        assert not pod.podinfo_volume, pod.name


def test_dns_matches_ready_pods(result: DemoResult) -> None:
    steps = {check.step for check in result.dns_checks}

    assert len(steps) == 3
    for check in result.dns_checks:
        assert check.matches, check


def test_dns_follows_replacement(result: DemoResult) -> None:
    replacement = result.replacement
    assert replacement is not None
    infer_answers = [check.answered for check in result.dns_checks if check.vertex == "infer"]

    assert len(infer_answers[0]) == 3
    assert replacement.deleted_address in infer_answers[0]
    assert replacement.deleted_address not in infer_answers[1]
    assert replacement.replacement_address in infer_answers[2]
    assert len(infer_answers[2]) == 3


def test_frames_add_up(result: DemoResult) -> None:
    accounting = result.accounting

    assert accounting.produced == SETTINGS.cameras * SETTINGS.frames_each_camera
    assert accounting.produced == accounting.received + accounting.dropped.total
    assert accounting.duplicates == 0
    assert accounting.unexpected == 0
    assert accounting.misrouted == 0
    assert accounting.unexplained_losses == []


def test_lost_frames_counted_dropped(result: DemoResult) -> None:
    dropped = result.accounting.dropped
    reasons = {reason.value for reason in DropReason}

    assert dropped.total > 0
    assert set(dropped.by_reason) <= reasons


def test_transport_counters_agree(result: DemoResult) -> None:
    accounting = result.accounting
    counters = accounting.transport_counters

    assert counters["frames_sent"] == accounting.transmitted
    assert sum(counters["frames_dropped"].values()) == sum(accounting.dropped.by_reason.values())
    assert accounting.dropped.lost_in_flight <= counters["frames_unconfirmed"]


def test_received_frames_check(result: DemoResult) -> None:
    infer = result.replicas_of("infer")

    assert result.accounting.received > 0
    assert result.accounting.checksum_failures == 0
    assert all(replica.mean_brightness is not None for replica in infer if replica.frames_received)


def test_stream_keeps_receiver(result: DemoResult) -> None:
    assert result.streams
    for path in result.streams:
        assert path.problem is None, path


def test_replacement_receives_frames(result: DemoResult) -> None:
    replacement = result.replacement
    assert replacement is not None

    assert replacement.frames_to_replacement > 0, replacement
    assert replacement.first_frame_at is not None
    assert replacement.listed_at is not None
    assert replacement.first_frame_at >= replacement.listed_at


def test_results_reach_out(result: DemoResult) -> None:
    results_sent = sum(replica.results_sent for replica in result.replicas_of("infer"))

    assert result.results_received > 0
    assert result.results_received <= results_sent


def test_nothing_left_running(result: DemoResult, processes_before: set[int]) -> None:
    assert result.network_prefix.startswith("nfr-")

    assert result.leftovers.clean, result.leftovers
    assert network_namespaces(result.network_prefix) == []
    children = {child.pid for child in psutil.Process().children(recursive=True)}
    assert children - processes_before == set()
    assert not Path(result.work_dir).exists()


def test_no_problems_reported(result: DemoResult) -> None:
    assert result.problems() == []


def test_sigterm_cleans_up(tmp_path: Path) -> None:
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    errors = tmp_path / "stderr"
    with open(errors, "w") as stderr:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "numaflow_rdma.cli", "demo",
                "--duration", "30", "--backend", "tcp", "--namespace", "video-stop",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "Start the decode UDFs" not in errors.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, errors.read_text()
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    output = errors.read_text()
    prefix = re.search(r"network namespace (nfr-[0-9a-f]+-)", output)
    assert prefix is not None, output

    assert status == 130, output
    assert "Clean-up done: no process, network namespace or file is left." in output
    assert network_namespaces(prefix.group(1)) == []
    children = {child.pid for child in psutil.Process().children(recursive=True)}
    assert children - before == set()
