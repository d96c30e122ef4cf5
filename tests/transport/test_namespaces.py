"""Sender and receiver processes in separate network namespaces, as pods on an RDMA network.

Every pod is a namespace with one veth on a shared bridge and an address in
198.18.0.0/24; the peers are ``bench_peer`` processes started with
``ip netns exec``. Receivers record every frame in a JSON-lines file as it
arrives, so a receiver killed with SIGKILL leaves a complete record.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from netnamespaces import BACKENDS, Topology, requires_root, wait_for_file

pytestmark = [pytest.mark.netns, requires_root]

PORT = 7470
PEER = ["-m", "numaflow_rdma.transport.bench_peer"]


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _start_receivers(
    net: Topology, work: Path, backend: str, names: list[str], *extra: str
) -> dict[str, subprocess.Popen[bytes]]:
    processes = {}
    for name in names:
        address = net.add_pod(name)
        arguments = [
            *PEER,
            "receive",
            "--backend",
            backend,
            "--host",
            address,
            "--port",
            str(PORT),
            "--name",
            name,
            "--records",
            str(work / f"{name}.jsonl"),
            "--summary",
            str(work / f"{name}.json"),
            "--ready-file",
            str(work / f"{name}.ready"),
            *extra,
        ]
        processes[name] = net.start(name, arguments, work / f"{name}.log")
    for name, process in processes.items():
        wait_for_file(work / f"{name}.ready", 30, process)
    return processes


def _start_sender(
    net: Topology, work: Path, backend: str, name: str, receivers: list[str], *extra: str
) -> subprocess.Popen[bytes]:
    net.add_pod(name)
    peers = ",".join(f"{net.addresses[receiver]}:{PORT}" for receiver in receivers)
    arguments = [
        *PEER,
        "send",
        "--backend",
        backend,
        "--peers",
        peers,
        "--name",
        name,
        "--wait-peers",
        str(len(receivers)),
        "--records",
        str(work / f"{name}.jsonl"),
        "--summary",
        str(work / f"{name}.json"),
        *extra,
    ]
    return net.start(name, arguments, work / f"{name}.log")


def _finish(process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(
            f"{process.args} did not finish within {timeout:.0f} s:\n{log.read_text()[-3000:]}"
        ) from None
    assert code == 0, f"{process.args} exited with {code}:\n{log.read_text()[-3000:]}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("peer_choice", ["round_robin", "key_affinity"])
def test_three_senders_to_three_receivers(backend: str, peer_choice: str, tmp_path: Path) -> None:
    receivers = ["r1", "r2", "r3"]
    senders = ["s1", "s2", "s3"]
    with Topology() as net:
        processes = _start_receivers(net, tmp_path, backend, receivers, "--peer-timeout", "3")
        keys = "camera-1,camera-2,camera-3,camera-4,camera-5"
        sending = {
            name: _start_sender(
                net,
                tmp_path,
                backend,
                name,
                receivers,
                "--count",
                "40",
                "--size",
                str(1 << 20),
                "--verify",
                "--peer-choice",
                peer_choice,
                "--keys",
                keys,
                "--send-timeout",
                "10",
                # Six processes share two CPUs here; this test is not about failure detection.
                "--peer-timeout",
                "3",
            )
            for name in senders
        }
        for name, process in sending.items():
            _finish(process, tmp_path / f"{name}.log")
        time.sleep(0.5)
        for process in processes.values():
            _stop(process)

    sent = {
        (name, record["seq"]): record
        for name in senders
        for record in _read_records(tmp_path / f"{name}.jsonl")
    }
    assert len(sent) == 3 * 40
    assert all(record["sent"] for record in sent.values()), [
        r for r in sent.values() if not r["sent"]
    ]

    received: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
    for receiver in receivers:
        for record in _read_records(tmp_path / f"{receiver}.jsonl"):
            identity = (record["sender"], record["seq"])
            assert identity not in received, f"frame {identity} arrived twice"
            received[identity] = (receiver, record)
    assert set(received) == set(sent)
    for identity, (receiver, record) in received.items():
        assert record["ok"] is True, f"frame {identity} arrived corrupted at {receiver}"
        assert sent[identity]["peer"] == f"{net.addresses[receiver]}:{PORT}"

    senders_per_receiver = collections.defaultdict(set)
    receivers_per_key = collections.defaultdict(set)
    for (sender, _), (receiver, record) in received.items():
        senders_per_receiver[receiver].add(sender)
        receivers_per_key[record["key"]].add(receiver)
    if peer_choice == "round_robin":
        assert all(senders_per_receiver[receiver] == set(senders) for receiver in receivers)
    else:
        # Every sender placed each key on the same receiver, and the keys spread out.
        assert all(len(used) == 1 for used in receivers_per_key.values()), receivers_per_key
        assert len({next(iter(used)) for used in receivers_per_key.values()}) >= 2


def _stream_and_disturb(
    backend: str, work: Path, disturb: signal.Signals
) -> tuple[Topology, list[dict[str, Any]], dict[str, Any], float, dict[str, list[dict[str, Any]]]]:
    receivers = ["r1", "r2", "r3"]
    with Topology() as net:
        processes = _start_receivers(net, work, backend, receivers)
        sender = _start_sender(
            net,
            work,
            backend,
            "s1",
            receivers,
            "--count",
            "480",
            "--rate",
            "60",
            "--size",
            "200000",
            "--verify",
        )
        wait_for_file(work / "s1.jsonl", 60, sender)
        time.sleep(1.5)
        disturbed_at = time.time()
        os.kill(processes["r2"].pid, disturb)
        if disturb == signal.SIGSTOP:
            time.sleep(2.0)
            os.kill(processes["r2"].pid, signal.SIGCONT)
        _finish(sender, work / "s1.log")
        time.sleep(0.5)
        for process in processes.values():
            _stop(process)
    records = _read_records(work / "s1.jsonl")
    summary = json.loads((work / "s1.json").read_text())
    received = {name: _read_records(work / f"{name}.jsonl") for name in receivers}
    return net, records, summary, disturbed_at, received


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_receiver_is_left_within_one_second(backend: str, tmp_path: Path) -> None:
    net, records, summary, killed_at, received = _stream_and_disturb(
        backend, tmp_path, signal.SIGKILL
    )
    victim = f"{net.addresses['r2']}:{PORT}"
    assert len(records) == 480

    # Within a second of the kill, every frame goes to the other receivers.
    late = [record for record in records if record["wall"] > killed_at + 1.0]
    assert late, "the stream ended too soon after the kill"
    assert all(record["sent"] and record["peer"] != victim for record in late), late[:5]

    # What the killed receiver never recorded is counted by the sender.
    to_victim = {record["seq"] for record in records if record["sent"] and record["peer"] == victim}
    recorded = {record["seq"] for record in received["r2"]}
    unconfirmed = summary["metrics"]["peers"][victim]["frames_unconfirmed"]
    assert len(to_victim - recorded) <= unconfirmed
    dropped = [record for record in records if not record["sent"]]
    assert sum(summary["metrics"]["frames_dropped"].values()) == len(dropped)
    assert all(record["reason"] in ("peer_lost", "timeout") for record in dropped), dropped

    # Frames sent to the survivors all arrived intact.
    for name in ("r1", "r3"):
        address = f"{net.addresses[name]}:{PORT}"
        expected = {
            record["seq"] for record in records if record["sent"] and record["peer"] == address
        }
        assert expected == {record["seq"] for record in received[name]}
        assert all(record["ok"] for record in received[name])


@pytest.mark.parametrize("backend", BACKENDS)
def test_frozen_receiver_is_left_and_rejoined(backend: str, tmp_path: Path) -> None:
    net, records, summary, frozen_at, _ = _stream_and_disturb(backend, tmp_path, signal.SIGSTOP)
    victim = f"{net.addresses['r2']}:{PORT}"

    # A frozen receiver sends no heartbeat: it is left within a second though its
    # connection stays open.
    window = [record for record in records if frozen_at + 1.0 < record["wall"] < frozen_at + 2.0]
    assert window, "no frame was sent while the receiver was frozen"
    assert all(record["peer"] != victim for record in window if record["sent"]), window[:5]

    # Once it runs again the sender reconnects and uses it again.
    after = [record for record in records if record["wall"] > frozen_at + 4.5 and record["sent"]]
    assert any(record["peer"] == victim for record in after), (
        "the thawed receiver was not used again"
    )
    assert sum(summary["metrics"]["frames_dropped"].values()) == sum(
        not record["sent"] for record in records
    )
