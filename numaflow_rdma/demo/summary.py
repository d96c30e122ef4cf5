"""The text the demo prints: what the webhook stored, and the summary at the end."""

from __future__ import annotations

from collections import Counter

from numaflow_rdma.demo import photos
from numaflow_rdma.demo.result import DemoResult, PodReport

MEGABYTE = 1_000_000


def _injection(report: PodReport) -> str:
    if not report.injected:
        return f"not touched ({report.component or 'no component label'} pod)"
    parts = [f"network {report.networks}"]
    parts.extend(f"{resource}={count}" for resource, count in sorted(report.resource_limits.items()))
    parts.extend(report.capabilities)
    parts.append(f"{len(report.rdma_env)} NUMAFLOW_RDMA_* variables")
    if report.podinfo_volume:
        parts.append("annotations volume")
    return ", ".join(parts)


def injection_lines(reports: list[PodReport]) -> list[str]:
    """Return one line per pod saying what the webhook stored on it, then one vertex's variables."""
    width = max((len(report.name) for report in reports), default=0)
    lines = [f"{report.name:<{width}}  {_injection(report)}" for report in reports]
    example = next((report for report in reports if report.rdma_env), None)
    if example is not None:
        lines.append(f"variables of {example.name}:")
        lines.extend(f"  {name}={value}" for name, value in sorted(example.rdma_env.items()))
    return lines


def _dropped_text(result: DemoResult) -> str:
    dropped = result.accounting.dropped
    parts = [f"{reason} {count}" for reason, count in sorted(dropped.by_reason.items())]
    if dropped.lost_in_flight:
        parts.append(f"lost in flight with the deleted pod {dropped.lost_in_flight}")
    return ", ".join(parts) if parts else "none"


def _pods_section(result: DemoResult) -> list[str]:
    lines = ["Pods and what the webhook injected:"]
    width = max((len(pod.name) for pod in result.pods), default=0)
    for pod in result.pods:
        address = pod.address or "-"
        note = ""
        if pod.deleted:
            note = " (deleted midway)"
        elif pod.replaces:
            note = f" (replaces {pod.replaces})"
        vertex = pod.vertex or "-"
        lines.append(f"  {pod.name:<{width}}  {vertex:<6}  {address:<13}  {_injection(pod)}{note}")
    return lines


def _dns_section(result: DemoResult) -> list[str]:
    lines = ["DNS answers (A records from CoreDNS on the gateway) against the Ready pods:"]
    for check in result.dns_checks:
        verdict = "matches" if check.matches else f"MISMATCH, Ready pods: {', '.join(check.expected)}"
        answered = ", ".join(check.answered) or "(no records)"
        lines.append(f"  [{check.step}] {check.name} -> {answered}: {verdict}")
    return lines


def _frames_section(result: DemoResult) -> list[str]:
    accounting = result.accounting
    counters = accounting.transport_counters
    lines = [
        "Frames (decode -> infer):",
        f"  produced {accounting.produced}, received {accounting.received}, dropped "
        f"{accounting.dropped.total} ({_dropped_text(result)}): "
        + ("produced = received + dropped" if accounting.balanced else "DOES NOT ADD UP"),
        f"  checksum failures {accounting.checksum_failures}, duplicates {accounting.duplicates}, "
        f"unexpected {accounting.unexpected}, misrouted {accounting.misrouted}",
    ]
    if counters:
        lines.append(
            f"  the senders' transport counters: sent {counters.get('frames_sent', 0)}, dropped "
            f"{counters.get('frames_dropped') or {}}, sent but unconfirmed "
            f"{counters.get('frames_unconfirmed', 0)}"
        )
    seconds = result.streaming_seconds
    if seconds > 0:
        lines.append(
            f"  throughput: {accounting.received} frames, "
            f"{accounting.bytes_received / MEGABYTE:,.0f} MB in {seconds:.1f} s = "
            f"{result.throughput_bytes_per_second / MEGABYTE:,.0f} MB/s, "
            f"{accounting.received / seconds:.1f} frames/s"
        )
    return lines


def _replicas_section(result: DemoResult) -> list[str]:
    lines = ["Per replica:"]
    for replica in result.replicas:
        if replica.vertex == "decode":
            text = (
                f"sent {replica.frames_sent}, dropped {replica.frames_dropped}, "
                f"{len(replica.streams)} streams"
            )
        elif replica.vertex == "infer":
            brightness = (
                f", mean brightness {replica.mean_brightness:.1f}"
                if replica.mean_brightness is not None
                else ""
            )
            text = (
                f"received {replica.frames_received} ({replica.bytes_received / MEGABYTE:,.0f} MB), "
                f"{len(replica.streams)} streams{brightness}, results to out: sent "
                f"{replica.results_sent}, dropped {replica.results_dropped}"
            )
        else:
            text = f"received {replica.frames_received} results"
        ending = "" if replica.exited_cleanly else " (killed, no exit record)"
        lines.append(f"  {replica.vertex:<6} {replica.pod:<22} {text}{ending}")

    infer = result.replicas_of("infer")
    total = sum(replica.frames_received for replica in infer)
    if total:
        lines.append("Distribution across infer replicas:")
        for replica in infer:
            share = replica.frames_received / total
            lines.append(f"  {replica.pod:<22} {share:6.1%}  {'#' * round(share * 40)}")
    return lines


def _replacement_section(result: DemoResult) -> list[str]:
    report = result.replacement
    if report is None:
        return []
    lines = [
        "Replacement:",
        f"  deleted {report.deleted_pod} ({report.deleted_address}) at {report.deleted_at:.1f} s; "
        f"{report.replacement_pod} ({report.replacement_address}) in DNS at "
        f"{report.listed_at or 0:.1f} s",
    ]
    if report.first_frame_at is not None:
        lines.append(
            f"  the replacement received its first frame at {report.first_frame_at:.1f} s, "
            f"{report.frames_to_replacement} frames in all"
        )
    else:
        lines.append("  the replacement received no frames")
    if report.streams_moved:
        moved = Counter(report.streams_moved.values())
        lines.append(
            "  streams that were on the deleted pod went on to: "
            + ", ".join(f"{pod} ({count})" for pod, count in sorted(moved.items()))
        )
    return lines


def format_summary(result: DemoResult) -> str:
    """Return the whole summary as text."""
    problems = result.problems()
    moved_ok = sum(1 for path in result.streams if path.problem is None)
    lines = [
        "== numaflow-rdma demo: summary ==",
        f"Pipeline {result.pipeline} in namespace {result.namespace}, backend {result.backend}, "
        f"{result.cameras} cameras at {result.fps:g} frames/s, 1080p RGB frames of "
        f"{photos.FRAME_BYTES:,} bytes.",
        "Multus, the kubelet and the scheduler were simulated: network namespaces on a bridge in "
        "198.18.0.0/15, network-status and Ready written through pods/status.",
        "",
        *_pods_section(result),
        "",
        *_dns_section(result),
        "",
        *_frames_section(result),
        f"  {moved_ok} of {len(result.streams)} streams stayed on one receiver while it lived",
        "",
        *_replicas_section(result),
        f"  out received {result.results_received} brightness results",
        "",
        *_replacement_section(result),
        "",
    ]
    if result.kept_work_dir:
        lines.append(f"Logs and journals are kept in {result.work_dir}.")
    if problems:
        lines.append("PROBLEMS:")
        lines.extend(f"  - {problem}" for problem in problems)
    else:
        lines.append("Result: every check passed.")
    return "\n".join(lines)
