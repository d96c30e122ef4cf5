"""The project's performance targets, checked against a suite run's results.

Each check returns a ``Verdict``: met, missed, or not measured with the
reason. The page lists every verdict, and explains each missed one with the
counters the run measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.common import FRAME_SIZES, MIB, ratio

FRAME_1080P = FRAME_SIZES["1080p RGB"]

MET = "met"
MISSED = "missed"
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Verdict:
    """One target: what it requires, what was measured, and whether it was met."""

    key: str
    target: str
    measured: str
    status: str
    detail: str = ""


def _result(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    entry = results.get("benchmarks", {}).get(name)
    if not entry or entry.get("status") != "ok":
        return None
    result: dict[str, Any] = entry["result"]
    return result


def _reason(results: dict[str, Any], name: str) -> str:
    entry = results.get("benchmarks", {}).get(name)
    if not entry:
        return f"the {name} benchmark did not run"
    return str(entry.get("reason") or entry.get("error") or entry.get("status"))


def find_row(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    """Return the first successful row whose fields equal ``match``."""
    for row in rows:
        if "error" in row:
            continue
        if all(row.get(key) == value for key, value in match.items()):
            return row
    return None


def _status(value: float, limit: float, at_least: bool) -> str:
    if math.isnan(value):
        return NOT_MEASURED
    return MET if (value >= limit if at_least else value <= limit) else MISSED


def _not_measured(key: str, target: str, reason: str) -> Verdict:
    return Verdict(key, target, "-", NOT_MEASURED, reason)


def frame_verdicts(results: dict[str, Any]) -> list[Verdict]:
    """Check: transport frames per second at least 10 times JetStream's for 1080p frames."""
    verdicts = []
    frames = _result(results, "frames")
    for backend in ("ucx", "tcp"):
        key = f"frames-{backend}"
        target = f"{backend} backend: at least 10x JetStream's frames/s, 1080p frames"
        if frames is None:
            verdicts.append(_not_measured(key, target, _reason(results, "frames")))
            continue
        rows = frames["saturated"]
        transport = find_row(rows, path=f"transport-{backend}", size=FRAME_1080P)
        jetstream = find_row(rows, path="jetstream", size=FRAME_1080P)
        if transport is None or jetstream is None:
            missing = frames.get("unavailable", {}).get(f"transport-{backend}", "a run failed")
            verdicts.append(_not_measured(key, target, missing))
            continue
        value = ratio(transport["receiver"]["fps"], jetstream["receiver"]["fps"])
        verdicts.append(
            Verdict(
                key,
                target,
                f"{value:.1f}x ({transport['receiver']['fps']:.0f} vs "
                f"{jetstream['receiver']['fps']:.1f} frames/s)",
                _status(value, 10.0, at_least=True),
            )
        )
    return verdicts


def perftest_selection(results: dict[str, Any]) -> str:
    """Return which ucx_perftest row matches the UCX transports the ucx backend used."""
    frames = _result(results, "frames") or {}
    return str(frames.get("transport", {}).get("ucx_perftest_selection", "default"))


def peer_verdicts(results: dict[str, Any]) -> list[Verdict]:
    """Check the transport against ucx_perftest, plain sockets and a socket ping-pong."""
    verdicts = []
    frames = _result(results, "frames")
    perftest = _result(results, "perftest")

    # ucx backend against ucx_perftest tag_bw, 1080p frames.
    key, target = "perftest", "ucx backend: at least 0.9x ucx_perftest tag_bw, 1080p frames"
    if frames is None or perftest is None:
        reason = _reason(results, "frames" if frames is None else "perftest")
        verdicts.append(_not_measured(key, target, reason))
    else:
        selection = perftest_selection(results)
        transport = find_row(frames["saturated"], path="transport-ucx", size=FRAME_1080P)
        reference = find_row(perftest["rows"], selection=selection, size=FRAME_1080P)
        if transport is None or reference is None:
            verdicts.append(
                _not_measured(key, target, "the ucx backend or ucx_perftest run failed")
            )
        else:
            value = ratio(transport["receiver"]["gbps"], reference["gbps"])
            verdicts.append(
                Verdict(
                    key,
                    target,
                    f"{value:.2f}x ({transport['receiver']['gbps']:.2f} vs "
                    f"{reference['gbps']:.2f} GB/s, ucx_perftest {selection})",
                    _status(value, 0.9, at_least=True),
                )
            )

    # Both backends against plain sockets, 1080p frames.
    for backend in ("ucx", "tcp"):
        key = f"sockets-{backend}"
        target = f"{backend} backend: at least 1.0x plain TCP sockets, 1080p frames"
        if frames is None:
            verdicts.append(_not_measured(key, target, _reason(results, "frames")))
            continue
        transport = find_row(frames["saturated"], path=f"transport-{backend}", size=FRAME_1080P)
        socket_row = find_row(frames["saturated"], path="socket", size=FRAME_1080P)
        if transport is None or socket_row is None:
            missing = frames.get("unavailable", {}).get(f"transport-{backend}", "a run failed")
            verdicts.append(_not_measured(key, target, missing))
            continue
        value = ratio(transport["receiver"]["gbps"], socket_row["receiver"]["gbps"])
        verdicts.append(
            Verdict(
                key,
                target,
                f"{value:.2f}x ({transport['receiver']['gbps']:.2f} vs "
                f"{socket_row['receiver']['gbps']:.2f} GB/s)",
                _status(value, 1.0, at_least=True),
            )
        )

    # p99 latency of 1 MiB frames against a plain-socket ping-pong at the same rate.
    for backend in ("ucx", "tcp"):
        key = f"latency-{backend}"
        target = f"{backend} backend: p99 latency of 1 MiB frames at most 1.5x a socket ping-pong"
        if frames is None:
            verdicts.append(_not_measured(key, target, _reason(results, "frames")))
            continue
        transport = find_row(frames["paced"], path=f"transport-{backend}", size=MIB)
        pingpong = find_row(frames["paced"], path="socket-pingpong", size=MIB)
        if transport is None or pingpong is None:
            missing = frames.get("unavailable", {}).get(f"transport-{backend}", "a run failed")
            verdicts.append(_not_measured(key, target, missing))
            continue
        mine = transport["receiver"]["latency_ms"]["p99"]
        reference = pingpong["sender"]["round_trip_ms"]["p99"]
        value = ratio(mine, reference)
        verdicts.append(
            Verdict(
                key,
                target,
                f"{value:.2f}x ({mine:.2f} vs {reference:.2f} ms)",
                _status(value, 1.5, at_least=False),
            )
        )
    return verdicts


def admission_verdicts(results: dict[str, Any]) -> list[Verdict]:
    """Check the webhook's p99 at 200 admissions per second: absolute, and against the injector."""
    from bench.admission import INJECTOR, WEBHOOK

    admission = _result(results, "admission")
    absolute_target = "webhook: p99 at most 10 ms at 200 admissions/s"
    relative_target = "webhook: p99 no higher than network-resources-injector's at 200/s"
    if admission is None:
        reason = _reason(results, "admission")
        return [
            _not_measured("admission-p99", absolute_target, reason),
            _not_measured("admission-vs-injector", relative_target, reason),
        ]
    mine = find_row(admission["rows"], server=WEBHOOK, rate=200)
    theirs = find_row(admission["rows"], server=INJECTOR, rate=200)
    verdicts = []
    if mine is None:
        reason = admission.get("unavailable", {}).get(WEBHOOK, "no run at 200/s")
        verdicts.append(_not_measured("admission-p99", absolute_target, reason))
    else:
        p99 = mine["latency_ms"]["p99"]
        status = _status(p99, 10.0, at_least=False)
        if mine["error_count"]:
            status = MISSED
        verdicts.append(
            Verdict(
                "admission-p99",
                absolute_target,
                f"{p99:.2f} ms, {mine['error_count']} errors",
                status,
            )
        )
    if mine is None or theirs is None:
        reason = admission.get("unavailable", {}).get(INJECTOR, "no run at 200/s")
        verdicts.append(_not_measured("admission-vs-injector", relative_target, reason))
    else:
        p99, reference = mine["latency_ms"]["p99"], theirs["latency_ms"]["p99"]
        verdicts.append(
            Verdict(
                "admission-vs-injector",
                relative_target,
                f"{p99:.2f} vs {reference:.2f} ms",
                _status(p99, reference, at_least=False),
            )
        )
    return verdicts


def dnssync_verdicts(results: dict[str, Any]) -> list[Verdict]:
    """Check dnssync's update-to-answer p99, cold-start time and cold-start memory."""
    dnssync = _result(results, "dnssync")
    targets = {
        "dnssync-latency": "dnssync: p99 from status update to DNS answer at most 1 s",
        "dnssync-cold-time": "dnssync: cold start over 5,000 pods converged within 15 s",
        "dnssync-cold-memory": "dnssync: at most 200 MB resident during the cold start",
    }
    if dnssync is None:
        reason = _reason(results, "dnssync")
        return [_not_measured(key, target, reason) for key, target in targets.items()]
    latency = dnssync["latency"]
    cold = dnssync["cold_start"]
    p99 = latency["latency_ms"]["p99"]
    latency_status = _status(p99, 1000.0, at_least=False)
    if latency["missed"]:
        latency_status = MISSED
    converged = cold["converged_s"]
    pods_note = "" if cold["pods"] >= 5000 else f" (only {cold['pods']} pods in this run)"
    time_status = MISSED if converged is None else _status(converged, 15.0, at_least=False)
    memory_mb = cold["peak_rss_bytes"] / 1e6
    return [
        Verdict(
            "dnssync-latency",
            targets["dnssync-latency"],
            f"{p99:.0f} ms, {latency['missed']} of {latency['updates']} not answered",
            latency_status,
        ),
        Verdict(
            "dnssync-cold-time",
            targets["dnssync-cold-time"],
            ("not converged" if converged is None else f"{converged:.1f} s") + pods_note,
            time_status,
        ),
        Verdict(
            "dnssync-cold-memory",
            targets["dnssync-cold-memory"],
            f"{memory_mb:.0f} MB peak{pods_note}",
            _status(memory_mb, 200.0, at_least=False),
        ),
    ]


def all_verdicts(results: dict[str, Any]) -> list[Verdict]:
    """Return every target's verdict, in the order of the page."""
    return [
        *frame_verdicts(results),
        *peer_verdicts(results),
        *admission_verdicts(results),
        *dnssync_verdicts(results),
    ]
