"""The transport under faults: a stream of frames to four receivers while things break.

Everything runs in a private network namespace (``run_isolated``): etcd and
CoreDNS on its loopback and on the gateway of a simulated RDMA network
(``SimulatedNetwork``) with one namespace per pod. Receivers r1 to r4 are
published in etcd as dnssync would. The sender s1 finds them through
CoreDNS and streams small frames at a fixed rate. Meanwhile, at fixed
points of the stream:

- r1 is killed with SIGKILL mid-stream and later started again;
- r2 stops reading (its UDF takes no frames) and later reads again;
- r3's link is taken down and brought up again;
- CoreDNS is stopped and later started again;
- the attacker a1 sends malformed handshakes and frames to r2, r3 and r4,
  then opens connections that send nothing;
- every receiver stops reading for a while, so that sends wait for credits
  and time out.

Then: no ``send`` blocked past its timeout (plus scheduling slack); every
frame was delivered once and intact, dropped with a reason, or sent to r1
before it died and counted as unconfirmed; memory stayed bounded; the
stream never stopped and the receivers kept their good connections; and
every attacking connection was closed by its receiver.
"""

from __future__ import annotations

import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from netnamespaces import requires_root, run_isolated
from runsize import record_figures, scaled

from numaflow_rdma import names
from numaflow_rdma.controlplane import CoreDns, Etcd
from numaflow_rdma.controlplane.network import SimulatedNetwork
from numaflow_rdma.controlplane.process import ManagedProcess

pytestmark = [pytest.mark.netns, pytest.mark.controlplane, requires_root]

SUITE = "transport"
PEER = str(Path(__file__).with_name("transportpeer.py"))
PORT = 7470
RECEIVERS = ("r1", "r2", "r3", "r4")
VERTEX = ("infer", "video", "reliability")
FRAMES = scaled(3_000, 100_000)
RATE = scaled(200.0, 800.0)
FRAME_SIZE = 1024
SEND_TIMEOUT = 0.5
# Scheduling slack on top of the send timeout: the stream shares two CPUs with
# five other processes, CoreDNS and etcd.
SLACK = 0.5
# Resident memory a process may gain after the first fifth of the stream.
MEMORY_GROWTH_LIMIT = 32 * 1024 * 1024


def _wait_for(path: Path, timeout: float, process: ManagedProcess) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.pid is None:
            raise AssertionError(f"{process.name} exited early:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{process.name} did not start within {timeout:.0f} s")
        time.sleep(0.05)


def _progress(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


class Storm:
    """The processes of one run inside the private namespace, and the faults applied to them."""

    def __init__(self, work: Path, net: SimulatedNetwork, etcd: Etcd, coredns: CoreDns) -> None:
        self.work = work
        self.net = net
        self.etcd = etcd
        self.coredns = coredns
        self.processes: dict[str, ManagedProcess] = {}
        self.addresses: dict[str, str] = {}
        self.timeline: list[tuple[float, str]] = []

    def peer(self, name: str, *arguments: str) -> ManagedProcess:
        pod = self.net.pods[name]
        command = pod.command([sys.executable, PEER, *arguments, "--work", str(self.work)])
        process = ManagedProcess(name, [*command, "--name", name], self.work / f"{name}.log")
        self.processes[name] = process
        process.start()
        return process

    def start_receiver(self, name: str) -> None:
        (self.work / f"{name}.ready").unlink(missing_ok=True)
        process = self.peer(name, "receive", "--host", self.addresses[name], "--port", str(PORT))
        _wait_for(self.work / f"{name}.ready", 30, process)

    def note(self, event: str) -> None:
        self.timeline.append((time.time(), event))

    # The faults.

    def kill_r1(self) -> None:
        self.processes["r1"].kill()
        self.note("r1 killed")

    def restart_r1(self) -> None:
        self.start_receiver("r1")
        self.note("r1 started again")

    def stall_r2(self) -> None:
        (self.work / "r2.stall").touch()
        self.note("r2 stopped reading")

    def resume_r2(self) -> None:
        (self.work / "r2.stall").unlink()
        self.note("r2 reads again")

    def stall_all(self) -> None:
        """Stop every receiver reading for 1.5 s: each send then waits its full timeout."""
        for name in RECEIVERS:
            (self.work / f"{name}.stall").touch()
        self.note("every receiver stopped reading")
        time.sleep(1.5)
        for name in RECEIVERS:
            (self.work / f"{name}.stall").unlink()
        self.note("every receiver reads again")

    def link_down_r3(self) -> None:
        self.net.set_link("r3", False)
        self.note("r3 link down")

    def link_up_r3(self) -> None:
        self.net.set_link("r3", True)
        self.note("r3 link up")

    def stop_dns(self) -> None:
        self.coredns.stop()
        self.note("CoreDNS stopped")

    def start_dns(self) -> None:
        self.coredns.start()
        self.coredns.wait_ready()
        self.note("CoreDNS started")

    def attack(self) -> None:
        targets = ",".join(f"{self.addresses[name]}:{PORT}" for name in ("r2", "r3", "r4"))
        self.peer("a1", "attack", "--targets", targets, "--idle", "48")
        self.note("attack started")


def _publish(etcd: Etcd, addresses: dict[str, str]) -> None:
    # Through etcd's JSON gateway: this runs in a forked child, where a gRPC
    # client would dial from the parent's network namespace.
    for name in RECEIVERS:
        key = names.pod_etcd_key(f"video-infer-{name}", *VERTEX)
        etcd.put(key, names.record_value(addresses[name], PORT, 1, "reliability"))


def run_storm(work: Path, frames: int, rate: float) -> dict[str, Any]:
    """Run the stream and its faults; return the addresses and the timeline. Runs isolated."""
    etcd = Etcd("dns-etcd", work)
    etcd.start()
    try:
        etcd.wait_ready()
        with SimulatedNetwork() as net:
            coredns = CoreDns(work, etcd.endpoint, extra_bind_addresses=[net.gateway])
            coredns.start()
            storm = Storm(work, net, etcd, coredns)
            try:
                coredns.wait_ready()
                return _run(storm, frames, rate)
            finally:
                for process in storm.processes.values():
                    process.stop(grace=15)
                coredns.stop()
    finally:
        etcd.stop()


def _run(storm: Storm, frames: int, rate: float) -> dict[str, Any]:
    net, work = storm.net, storm.work
    for name in (*RECEIVERS, "s1", "a1"):
        storm.addresses[name] = net.add_pod(name).address
    for name in RECEIVERS:
        storm.start_receiver(name)
    _publish(storm.etcd, storm.addresses)

    sender = storm.peer(
        "s1",
        "send",
        "--dns-name",
        names.vertex_dns_name(*VERTEX),
        "--nameserver",
        f"{net.gateway}:{storm.coredns.port}",
        "--count",
        str(frames),
        "--size",
        str(FRAME_SIZE),
        "--rate",
        str(rate),
        "--send-timeout",
        str(SEND_TIMEOUT),
        "--wait-peers",
        str(len(RECEIVERS)),
    )
    _wait_for(work / "s1.ready", 60, sender)
    storm.note("stream started")

    schedule = [
        (0.10, storm.kill_r1),
        (0.20, storm.stall_r2),
        (0.30, storm.link_down_r3),
        (0.35, storm.restart_r1),
        (0.40, storm.link_up_r3),
        (0.45, storm.resume_r2),
        (0.50, storm.stop_dns),
        (0.55, storm.attack),
        (0.70, storm.start_dns),
        (0.80, storm.stall_all),
    ]
    # The stream takes frames / rate seconds; the sender may fall behind on a busy machine.
    deadline = time.monotonic() + 3 * frames / rate + 120
    while schedule or sender.pid is not None:
        done = _progress(work / "s1.progress")
        while schedule and done >= schedule[0][0] * frames:
            schedule.pop(0)[1]()
        if sender.pid is None and schedule:
            raise AssertionError(f"the sender ended early:\n{sender.log_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the stream did not finish in time:\n{sender.log_tail()}")
        time.sleep(0.05)
    storm.note("stream ended")

    attacker = storm.processes["a1"]
    attack_deadline = time.monotonic() + 120
    while attacker.pid is not None and time.monotonic() < attack_deadline:
        time.sleep(0.1)
    if not (work / "a1.json").exists():
        raise AssertionError(f"the attacker failed:\n{attacker.log_tail(40)}")
    for name in RECEIVERS:
        storm.processes[name].stop(grace=15)
    return {"addresses": storm.addresses, "timeline": storm.timeline}


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _growth(samples: list[int]) -> int:
    """Return how far memory rose above its level after the first fifth of the samples."""
    if len(samples) < 5:
        return 0
    return max(samples[len(samples) // 5 :]) - samples[len(samples) // 5]


def check_storm(work: Path, result: dict[str, Any], frames: int) -> dict[str, Any]:
    """Check the records of one run; return its figures."""
    addresses: dict[str, str] = result["addresses"]
    timeline = {event: at for at, event in result["timeline"]}
    receiver_of = {f"{addresses[name]}:{PORT}": name for name in RECEIVERS}
    sent = {record["index"]: record for record in _records(work / "s1.jsonl")}
    summary = json.loads((work / "s1.json").read_text())
    metrics = summary["metrics"]
    assert len(sent) == frames

    # No send call blocked past its timeout.
    longest = max(record["duration"] for record in sent.values())
    assert longest <= SEND_TIMEOUT + SLACK, f"a send took {longest:.2f} s"

    # Every frame was delivered once and intact, or dropped with a reason, or unconfirmed.
    delivered: dict[int, str] = {}
    for name in RECEIVERS:
        for record in _records(work / f"{name}.jsonl"):
            assert record["ok"], f"frame {record['index']} arrived corrupted at {name}"
            assert record["index"] not in delivered, f"frame {record['index']} arrived twice"
            delivered[record["index"]] = name
    dropped = {index for index, record in sent.items() if not record["sent"]}
    assert all(sent[index]["reason"] for index in dropped)
    assert not dropped & set(delivered), "a frame reported as dropped was delivered"
    for index, name in delivered.items():
        assert receiver_of[sent[index]["peer"]] == name, f"frame {index} went to another receiver"
    # A frame sent but never delivered went to a receiver the sender lost (killed, or cut
    # off longer than the peer timeout) with the frame unconfirmed, and is counted so.
    lost = set(sent) - dropped - set(delivered)
    lost_by_peer = collections.Counter(sent[index]["peer"] for index in lost)
    for peer, count in lost_by_peer.items():
        counted = metrics["peers"][peer]["frames_unconfirmed"]
        assert count <= counted, (
            f"{count} frames to {receiver_of[peer]} vanished, {counted} counted"
        )
    drop_counts = collections.Counter(sent[index]["reason"] for index in dropped)
    assert drop_counts == collections.Counter(metrics["frames_dropped"])

    # The stream never stopped: each tenth of it reached some receiver.
    for tenth in range(10):
        part = range(tenth * frames // 10, (tenth + 1) * frames // 10)
        assert any(index in delivered for index in part), f"nothing delivered in tenth {tenth}"
    attacked_at = timeline["attack started"]
    after_attack = [
        index
        for index, name in delivered.items()
        if name == "r4" and sent[index]["wall"] > attacked_at
    ]
    assert after_attack, "r4 received nothing after the attack began"
    restarted_at = timeline["r1 started again"]
    if timeline["stream ended"] - restarted_at > 8:
        assert any(
            name == "r1" and sent[index]["wall"] > restarted_at for index, name in delivered.items()
        ), "r1 received nothing after it was started again"

    # Memory stayed bounded.
    growth = {"s1": _growth(summary["rss_samples"])}
    receivers = {name: json.loads((work / f"{name}.json").read_text()) for name in RECEIVERS}
    for name in ("r2", "r3", "r4"):
        growth[name] = _growth(receivers[name]["rss_samples"])
    assert all(value <= MEMORY_GROWTH_LIMIT for value in growth.values()), growth

    # Every attacking connection was closed by its receiver.
    # NOTE: except a HELLO with a deeply nested header, which the receiver keeps open; see
    # test_deep_json_handshake_is_rejected, which fails until the transport handles it.
    attack = json.loads((work / "a1.json").read_text())
    attack_records = _records(work / "a1.jsonl")
    left_open = [record for record in attack_records if not record["closed"]]
    assert all(record["kind"] == "deep-json" for record in left_open), left_open
    slowest_close = max(record["seconds"] for record in attack_records if record["closed"])
    rejected: collections.Counter[str] = collections.Counter()
    for name in ("r2", "r3", "r4"):
        counts = receivers[name]["metrics"]["connections_rejected"]
        rejected.update(counts)
        # Each bad handshake and idle connection counts as rejected, except the one
        # with a deeply nested header (see test_deep_json_handshake_is_counted).
        idle = attack["idle_per_target"][f"{addresses[name]}:{PORT}"]
        expected = attack["handshakes_per_target"] - 1 + idle
        assert sum(counts.values()) >= expected, (name, counts)

    return {
        "frames": frames,
        "frame_bytes": FRAME_SIZE,
        "delivered": len(delivered),
        "dropped": len(dropped),
        **{f"dropped_{reason}": count for reason, count in sorted(drop_counts.items())},
        "unconfirmed_lost": len(lost),
        "unconfirmed_counted": metrics["frames_unconfirmed"],
        "longest_send_s": round(longest, 3),
        "sender_rss_growth_mib": round(growth["s1"] / 2**20, 1),
        "receiver_rss_growth_mib": round(
            max(growth[name] for name in ("r2", "r3", "r4")) / 2**20, 1
        ),
        "attack_connections": attack["connections"],
        "attack_left_open": len(left_open),
        "attack_slowest_close_s": round(slowest_close, 2),
        **{f"rejected_{reason}": count for reason, count in sorted(rejected.items())},
        "faults": 6,
        "elapsed_s": round(summary["elapsed_s"], 1),
    }


def test_stream_survives_faults(tmp_path: Path) -> None:
    limit = 3 * FRAMES / RATE + 400
    result = run_isolated(run_storm, tmp_path, FRAMES, RATE, timeout=limit)
    (tmp_path / "timeline.json").write_text(json.dumps(result))
    figures = check_storm(tmp_path, result, FRAMES)
    record_figures(SUITE, "storm", figures)


def _deep_json_handshake() -> tuple[bool, dict[str, int]]:
    """Send a HELLO nested 2,000 levels deep; return whether the receiver closed, and its counts."""
    import socket

    from numaflow_rdma.transport import Receiver
    from numaflow_rdma.transport.protocol import Kind, encode_preamble

    with Receiver("127.0.0.1", 0, backend="tcp", namespace="ns", pipeline="video") as receiver:
        header = b"[" * 2000 + b"]" * 2000
        closed = False
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=7) as sock:
            sock.sendall(bytes(encode_preamble(Kind.HELLO, len(header))) + header)
            # The handshake timeout is 5 s; a receiver that handles the header closes sooner.
            try:
                while sock.recv(65536):
                    pass
                closed = True
            except TimeoutError:
                closed = False
        rejected: dict[str, int] = receiver.metrics.snapshot()["connections_rejected"]
        return closed, rejected


def test_deep_json_handshake_is_rejected() -> None:
    closed, rejected = run_isolated(_deep_json_handshake)
    assert closed, "the receiver kept the connection open"
    assert rejected == {"malformed": 1}
