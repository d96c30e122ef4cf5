"""Explain a missed target with the counters the run measured.

Each explanation quotes CPU time per process (user plus system seconds, read
by each worker from ``os.times`` or for servers from psutil), the share of a
core each process kept busy, and the other figures the benchmark recorded.
It states what was measured and leaves the conclusion to those numbers.
"""

from __future__ import annotations

import os
from typing import Any

from bench.common import FRAME_SIZES, MIB, ratio
from bench.targets import Verdict, find_row

FRAME_1080P = FRAME_SIZES["1080p RGB"]


def _result(results: dict[str, Any], name: str) -> dict[str, Any]:
    entry = results.get("benchmarks", {}).get(name, {})
    result: dict[str, Any] = entry.get("result", {}) if entry.get("status") == "ok" else {}
    return result


def _cpu(side: dict[str, Any]) -> float:
    return float(side["cpu_s"]["user"] + side["cpu_s"]["system"])


def describe_frame_run(row: dict[str, Any] | None, label: str) -> str:
    """Return one sentence of a frame run's counters: rate, CPU per process and busy cores."""
    if row is None or "error" in row:
        return f"{label}: no successful run."
    receiver, sender = row["receiver"], row["sender"]
    elapsed = receiver["elapsed_s"] or float("nan")
    parts = [
        f"{label}: {receiver['gbps']:.2f} GB/s; sender {_cpu(sender):.2f} CPU s "
        f"({ratio(_cpu(sender), sender['wall_s']):.2f} cores busy), receiver "
        f"{_cpu(receiver):.2f} CPU s ({ratio(_cpu(receiver), elapsed):.2f} cores busy)"
    ]
    if row["path"] == "jetstream":
        parts.append(
            f"nats-server {row['server_cpu_s']:.2f} CPU s "
            f"({ratio(row['server_cpu_s'], elapsed):.2f} cores busy)"
        )
    parts.append(f"{row.get('cpu_s_per_gb', float('nan')):.2f} CPU s per GB in all")
    return ", ".join(parts) + "."


def _machine_cores(results: dict[str, Any]) -> int:
    return int(results.get("machine", {}).get("logical_cpus") or os.cpu_count() or 1)


def _frames_explanation(verdict: Verdict, results: dict[str, Any]) -> str:
    frames = _result(results, "frames")
    saturated = frames.get("saturated", [])
    paced = frames.get("paced", [])
    backend = verdict.key.rsplit("-", 1)[-1]
    transport_path = f"transport-{backend}"
    lines = []
    if verdict.key.startswith("latency-"):
        for path in (transport_path, "socket-pingpong"):
            row = find_row(paced, path=path, size=MIB)
            lines.append(describe_frame_run(row, f"{path} at 1 MiB, paced"))
    else:
        size = FRAME_1080P
        paths = (
            [transport_path, "jetstream"]
            if verdict.key.startswith("frames-")
            else [
                transport_path,
                "socket",
            ]
        )
        for path in paths:
            lines.append(
                describe_frame_run(find_row(saturated, path=path, size=size), f"{path} at 1080p")
            )
    cores = _machine_cores(results)
    lines.append(
        f"The machine has {cores} logical CPUs; sender, receiver and any server share them, "
        "so a sum of busy cores near that number means the run was CPU-bound."
    )
    return " ".join(lines)


def _perftest_explanation(verdict: Verdict, results: dict[str, Any]) -> str:
    frames = _result(results, "frames")
    row = find_row(frames.get("saturated", []), path="transport-ucx", size=FRAME_1080P)
    return (
        describe_frame_run(row, "transport-ucx at 1080p")
        + " ucx_perftest runs the same UCX transports from C with no Python or framing on "
        "either side, so the gap is what the transport's own work per frame costs; the CPU "
        "seconds above are that work."
    )


def _admission_explanation(verdict: Verdict, results: dict[str, Any]) -> str:
    from bench.admission import INJECTOR, WEBHOOK

    admission = _result(results, "admission")
    rows = admission.get("rows", [])
    lines = []
    for server in (WEBHOOK, INJECTOR):
        row = find_row(rows, server=server, rate=200)
        if row is None:
            continue
        lines.append(
            f"{server} at 200/s: p50 {row['latency_ms']['p50']:.2f} ms, p99 "
            f"{row['latency_ms']['p99']:.2f} ms, {row['server_cpu_ms_per_request']:.2f} CPU ms per "
            f"request, {row['server_cores_busy']:.2f} cores busy, {row['error_count']} errors."
        )
        generator = row["generator_cpu_s"]
        lines.append(
            f"The load generator used {generator.get('user', 0) + generator.get('system', 0):.2f} "
            f"CPU s and started requests up to {row['send_lag_ms']['p99']:.2f} ms late (p99)."
        )
    if admission.get("profile"):
        lines.append("The admission section lists where the webhook's CPU time went (py-spy).")
    cores = _machine_cores(results)
    lines.append(
        f"The machine has {cores} logical CPUs, shared by the webhook's workers, the API "
        "server, etcd and the load generator."
    )
    return " ".join(lines)


def _dnssync_explanation(verdict: Verdict, results: dict[str, Any]) -> str:
    dnssync = _result(results, "dnssync")
    cold = dnssync.get("cold_start", {})
    latency = dnssync.get("latency", {})
    return (
        f"Cold start: {cold.get('records', 0):,} of {cold.get('pods', 0):,} records after "
        f"{cold.get('converged_s') or cold.get('timeout_s', 0):.1f} s, peak resident memory "
        f"{cold.get('peak_rss_bytes', 0) / 1e6:.0f} MB, {cold.get('rss_after_bytes', 0) / 1e6:.0f} MB "
        f"after. Latency: {latency.get('missed', 0)} of {latency.get('updates', 0)} updates not "
        "answered within 10 s."
    )


def explain(verdict: Verdict, results: dict[str, Any]) -> str:
    """Return a paragraph with the measured counters behind one missed target."""
    if verdict.key.startswith(("frames-", "sockets-", "latency-")):
        body = _frames_explanation(verdict, results)
    elif verdict.key == "perftest":
        body = _perftest_explanation(verdict, results)
    elif verdict.key.startswith("admission"):
        body = _admission_explanation(verdict, results)
    elif verdict.key.startswith("dnssync"):
        body = _dnssync_explanation(verdict, results)
    else:
        body = "No counters were recorded for this target."
    return f"**{verdict.target}** ({verdict.measured}). {body}"
