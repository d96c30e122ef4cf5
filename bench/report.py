"""Write docs/benchmarks.md and its plots from a suite run's results.

``write_report(results, output_dir)`` writes ``benchmarks.md`` into
``output_dir`` and the PNG plots and ``results.json`` into
``output_dir/benchmarks/``. Every figure on the page comes from the results;
nothing is typed in by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import targets
from bench.common import FRAME_SIZES, ratio
from bench.frames import PATH_LABELS
from bench.targets import MET, MISSED, Verdict, find_row

IMAGE_DIR = "benchmarks"
SIZE_LABELS = {size: f"{label} ({size:,} B)" for label, size in FRAME_SIZES.items()}


def _number(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _entry(results: dict[str, Any], name: str) -> dict[str, Any]:
    entry: dict[str, Any] = results.get("benchmarks", {}).get(name, {"status": "not run"})
    return entry


def _not_run_text(entry: dict[str, Any]) -> str:
    status = entry.get("status", "not run")
    reason = entry.get("reason") or entry.get("error") or ""
    first_line = _short(reason)
    if status == "skipped":
        return f"Not run: {first_line}"
    if status == "failed":
        return f"Failed: {first_line}"
    return "Not run in this suite run."


def _short(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _not_run_list(reasons: dict[str, str], labels: dict[str, str] | None = None) -> str:
    lines = [
        f"- {(labels or {}).get(key, key)}: not run, {_short(reason, 300)}"
        for key, reason in reasons.items()
    ]
    return "\n".join(lines)


# Plots.


def _plot_grouped_bars(
    path: Path,
    title: str,
    ylabel: str,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    log: bool = False,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(1, len(series))
    for index, (label, values) in enumerate(series.items()):
        positions = [group + index * width for group in range(len(groups))]
        clean = [0.0 if math.isnan(value) else value for value in values]
        axes.bar(positions, clean, width, label=label)
    axes.set_xticks([group + width * (len(series) - 1) / 2 for group in range(len(groups))])
    axes.set_xticklabels(groups)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if log:
        axes.set_yscale("log")
    axes.legend(fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_lines(
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    log: bool = False,
    xticks: Sequence[str] | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    for label, (xs, ys) in series.items():
        axes.plot(xs, ys, marker="o", label=label)
    if xticks is not None:
        axes.set_xticks(range(len(xticks)))
        axes.set_xticklabels(xticks)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if log:
        axes.set_yscale("log")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# Sections.


def machine_section(results: dict[str, Any]) -> str:
    """Return the section about the machine, versions, command line and date."""
    machine = results["machine"]
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    programs = ", ".join(f"{name} {version}" for name, version in machine["programs"].items())
    rows = [
        ("Date", machine["date"]),
        (
            "Command",
            f"`{machine['command']}`"
            + (" (smoke run: figures mean nothing)" if results["smoke"] else ""),
        ),
        ("Suite time", f"{results['elapsed_s']:.0f} s"),
        ("CPU", f"{machine['cpu_model']}, {machine['logical_cpus']} logical CPUs"),
        ("Memory", f"{machine['memory_bytes'] / 2**30:.1f} GiB"),
        ("Operating system", f"{machine['operating_system']}, Linux {machine['kernel']}"),
        ("Load average at start", ", ".join(f"{value:.2f}" for value in machine["load_average"])),
        ("GPUs", ", ".join(machine["gpus"]) or "none"),
        ("Python", machine["python"]),
        ("Commit", machine["git_commit"]),
        ("Python packages", packages),
        ("Programs built from source", programs),
    ]
    return "## Machine and software\n\n" + _table(("what", "value"), rows)


def summary_section(verdicts: list[Verdict]) -> str:
    """Return the table of targets and whether each was met."""
    rows = [
        (
            verdict.target,
            verdict.measured,
            verdict.status + (f": {_short(verdict.detail, 160)}" if verdict.detail else ""),
        )
        for verdict in verdicts
    ]
    return "## Targets\n\n" + _table(("target", "measured", "result"), rows)


def _frame_row(result: dict[str, Any], round_trip: bool = False) -> list[str]:
    label = PATH_LABELS.get(result["path"], result["path"])
    if "error" in result:
        return [label, "failed: " + _short(result["error"], 120), "", "", "", "", "", ""]
    receiver = result["receiver"]
    latency = result["sender"]["round_trip_ms"] if round_trip else receiver["latency_ms"]
    return [
        label,
        _number(receiver["fps"], 1),
        _number(receiver["gbps"], 3),
        _number(latency["p50"]),
        _number(latency["p99"]),
        str(result["lost"]),
        _number(result.get("cpu_s_per_gb"), 2),
        _number(result.get("server_cpu_s"), 1) if result["path"] == "jetstream" else "",
    ]


def frames_section(results: dict[str, Any], image_dir: Path) -> str:
    """Return the section comparing the direct paths with the inter-step buffer."""
    entry = _entry(results, "frames")
    heading = "## Frames: direct path against the inter-step buffer\n\n"
    if entry.get("status") != "ok":
        return heading + _not_run_text(entry)
    frames = entry["result"]
    parts = [
        heading
        + "One sender and one receiver process, in one network namespace with only loopback. "
        "Every frame carries its sequence number and the sender's `CLOCK_MONOTONIC` time; "
        "latency is from the send call to the moment the whole frame is in the receiver's "
        "hands. Saturated runs send back to back for "
        f"{frames['duration_s']:g} s after a short warm-up, so their latency includes the "
        "queue in front of the slowest stage. In these runs a transport sender keeps "
        f"{frames.get('saturated_window', 1)} frames on their way with `Sender.submit`, "
        "and the other paths send one at a time. JetStream is set up as Numaflow sets up its "
        "inter-step buffer (file storage, durable pull consumer, explicit acknowledgement, "
        "PubAck awaited per frame, one replica, `max_payload` raised to the frame size). "
        "CPU s/GB adds the user and system time of sender, receiver and nats-server."
    ]
    parts.append(_not_run_list(frames.get("unavailable", {}), PATH_LABELS))

    header = (
        "path",
        "frames/s",
        "GB/s",
        "p50 ms",
        "p99 ms",
        "lost",
        "CPU s/GB",
        "nats-server CPU s",
    )
    for size, label in SIZE_LABELS.items():
        rows = [_frame_row(row) for row in frames["saturated"] if row["size"] == size]
        parts.append(f"### {label}, saturated\n\n" + _table(header, rows))
        jetstream = find_row(frames["saturated"], path="jetstream", size=size)
        ratios = []
        for path in ("transport-ucx", "transport-tcp", "socket"):
            row = find_row(frames["saturated"], path=path, size=size)
            if row and jetstream:
                value = ratio(row["receiver"]["fps"], jetstream["receiver"]["fps"])
                ratios.append(f"{PATH_LABELS[path]} {value:.1f}x")
        if ratios:
            parts.append("Frames per second against JetStream: " + ", ".join(ratios) + ".")

    paced_rows = []
    for size, label in SIZE_LABELS.items():
        for row in frames["paced"]:
            if row["size"] != size:
                continue
            cells = _frame_row(row, round_trip=row["path"] == "socket-pingpong")
            paced_rows.append([label, f"{row['rate']:g}", *cells[:1], *cells[3:6]])
    parts.append(
        "### Paced latency\n\n"
        "The same paths at a fixed rate that none of the direct paths saturates, "
        f"for {frames['paced_duration_s']:g} s each. For the socket ping-pong the latency is "
        "the round trip: the frame out and an 8-byte answer back.\n\n"
        + _table(("frame", "frames/s sent", "path", "p50 ms", "p99 ms", "lost"), paced_rows)
    )

    groups = list(FRAME_SIZES)
    series: dict[str, list[float]] = {}
    for path in ("transport-ucx", "transport-tcp", "socket", "jetstream"):
        values = []
        for size in FRAME_SIZES.values():
            row = find_row(frames["saturated"], path=path, size=size)
            values.append(row["receiver"]["fps"] if row else math.nan)
        if not all(math.isnan(value) for value in values):
            series[PATH_LABELS[path]] = values
    if series:
        _plot_grouped_bars(
            image_dir / "frames-fps.png",
            "Frames per second, saturated (log scale)",
            "frames/s",
            groups,
            series,
            log=True,
        )
        parts.append(f"![Frames per second by path and frame size]({IMAGE_DIR}/frames-fps.png)")
    return "\n\n".join(parts)


def peers_section(results: dict[str, Any], image_dir: Path) -> str:
    """Return the section comparing the transport with ucx_perftest and plain sockets."""
    heading = "## Transport against its peers\n\n"
    frames_entry = _entry(results, "frames")
    perftest_entry = _entry(results, "perftest")
    parts = [
        heading + "Bandwidth of the saturated runs above next to `ucx_perftest -t tag_bw` (the UCX "
        "release ucxx loads, same namespace, the ucx backend's UCX variables) three ways: "
        "`UCX_TLS=tcp`; UCX's default transport selection, which the ucx backend's payload "
        "endpoints (made from worker addresses, without endpoint error handling) also get; "
        "and the default selection with endpoint error handling (`-e`), which ucxx's "
        "listener endpoints have. Plain TCP sockets use `sendall` and "
        "`recv_into` into one preallocated buffer. ucx_perftest measures on the client when "
        "sends complete, so it can read slightly high."
    ]
    if perftest_entry.get("status") == "ok":
        perftest = perftest_entry["result"]
        parts.append(
            f"UCX {perftest['ucx_version']}; iterations per frame size: "
            + ", ".join(
                f"{int(size):,} B: {count}"
                for size, count in sorted(
                    perftest["iterations"].items(), key=lambda item: int(item[0])
                )
            )
            + "; "
            f"environment of the ucx backend: `{perftest['environment'] or 'none'}`."
        )
    else:
        perftest = None
        parts.append("ucx_perftest: " + _not_run_text(perftest_entry))
    frames = frames_entry["result"] if frames_entry.get("status") == "ok" else None
    if frames is None:
        parts.append("Frames: " + _not_run_text(frames_entry))

    columns = {
        "transport, ucx": lambda size: _gbps(frames, "transport-ucx", size),
        "transport, tcp": lambda size: _gbps(frames, "transport-tcp", size),
        "ucx_perftest, UCX_TLS=tcp": lambda size: _perftest_gbps(perftest, "tcp", size),
        "ucx_perftest, default UCX_TLS": lambda size: _perftest_gbps(perftest, "default", size),
        "ucx_perftest -e": lambda size: _perftest_gbps(perftest, "error-handling", size),
        "plain TCP socket": lambda size: _gbps(frames, "socket", size),
    }
    rows = []
    series: dict[str, list[float]] = {name: [] for name in columns}
    for size, label in SIZE_LABELS.items():
        values = {name: column(size) for name, column in columns.items()}
        for name, value in values.items():
            series[name].append(value)
        rows.append([label, *(_number(value, 3) for value in values.values())])
    parts.append("GB/s (10^9 bytes per second):\n\n" + _table(("frame", *columns), rows))

    selection = targets.perftest_selection(results)
    ratio_rows = []
    for size, label in SIZE_LABELS.items():
        ucx = _gbps(frames, "transport-ucx", size)
        tcp = _gbps(frames, "transport-tcp", size)
        reference = _perftest_gbps(perftest, selection, size)
        sockets = _gbps(frames, "socket", size)
        ratio_rows.append(
            [
                label,
                _number(ratio(ucx, reference)),
                _number(ratio(ucx, sockets)),
                _number(ratio(tcp, sockets)),
            ]
        )
    parts.append(
        f"Ratios (ucx_perftest row: {selection}, the transports the ucx backend can use):\n\n"
        + _table(("frame", "ucx / ucx_perftest", "ucx / sockets", "tcp / sockets"), ratio_rows)
    )
    present = {
        name: values for name, values in series.items() if not all(math.isnan(v) for v in values)
    }
    if present:
        _plot_grouped_bars(
            image_dir / "peers-gbps.png",
            "Bandwidth by frame size",
            "GB/s",
            list(FRAME_SIZES),
            present,
        )
        parts.append(f"![Bandwidth of the transport and its peers]({IMAGE_DIR}/peers-gbps.png)")
    return "\n\n".join(part for part in parts if part)


def _gbps(frames: dict[str, Any] | None, path: str, size: int) -> float:
    if frames is None:
        return math.nan
    row = find_row(frames["saturated"], path=path, size=size)
    return float(row["receiver"]["gbps"]) if row else math.nan


def _perftest_gbps(perftest: dict[str, Any] | None, selection: str, size: int) -> float:
    if perftest is None:
        return math.nan
    row = find_row(perftest["rows"], selection=selection, size=size)
    return float(row["gbps"]) if row else math.nan


def admission_section(results: dict[str, Any], image_dir: Path) -> str:
    """Return the section comparing the webhook with network-resources-injector."""
    heading = "## Admission: webhook against network-resources-injector\n\n"
    entry = _entry(results, "admission")
    if entry.get("status") != "ok":
        return heading + _not_run_text(entry)
    admission = entry["result"]
    parts = [
        heading
        + "Both webhooks over TLS on loopback, reading the same NetworkAttachmentDefinition "
        "from the same kube-apiserver. One open-loop generator sends the same "
        f"{admission['corpus_size']} AdmissionReviews (the Numaflow vertex pod fixtures, each "
        "naming the RDMA network) at a fixed rate for "
        f"{admission['duration_s']:g} s per rate after a 1 s warm-up; latency runs from the "
        "moment a request was due, so a server that falls behind is charged for its queue. "
        "Held is answered requests per second; CPU ms/request and cores busy are the "
        "server's whole process tree."
    ]
    parts.append(_not_run_list(admission.get("unavailable", {})))
    rows = [
        [
            f"{row['rate']:g}",
            row["server"],
            _number(row["throughput_per_s"], 0),
            _number(row["latency_ms"]["p50"]),
            _number(row["latency_ms"]["p99"]),
            _number(row["latency_ms"]["max"]),
            str(row["error_count"]) + (f" ({row['errors']})" if row["errors"] else ""),
            _number(row["server_cpu_ms_per_request"]),
            _number(row["server_cores_busy"]),
            _number(row["send_lag_ms"]["p99"]),
        ]
        for row in admission["rows"]
    ]
    parts.append(
        _table(
            (
                "rate/s",
                "server",
                "held/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "errors",
                "CPU ms/request",
                "cores busy",
                "generator lag p99 ms",
            ),
            rows,
        )
    )
    rates = sorted({row["rate"] for row in admission["rows"]})
    series = {}
    for server in sorted({row["server"] for row in admission["rows"]}):
        xs, p99s, p50s = [], [], []
        for index, rate in enumerate(rates):
            row = find_row(admission["rows"], server=server, rate=rate)
            if row:
                xs.append(float(index))
                p99s.append(row["latency_ms"]["p99"])
                p50s.append(row["latency_ms"]["p50"])
        series[f"{server} p99"] = (xs, p99s)
        series[f"{server} p50"] = (xs, p50s)
    if series:
        _plot_lines(
            image_dir / "admission-latency.png",
            "Admission latency against request rate",
            "requests per second",
            "latency, ms (log scale)",
            series,
            log=True,
            xticks=[f"{rate:g}" for rate in rates],
        )
        parts.append(
            f"![Admission latency against request rate]({IMAGE_DIR}/admission-latency.png)"
        )
    profile = admission.get("profile")
    if profile:
        parts.append(
            "Where the webhook's processes spent their CPU time in an extra run at 200/s, "
            "sampled by py-spy at 200 Hz in threads holding the GIL (functions at the top of "
            "the stack, share of all samples):\n\n"
            + _table(
                ("function", "share"), [(f"`{frame}`", f"{share:.1f}%") for frame, share in profile]
            )
        )
    return "\n\n".join(part for part in parts if part)


def dnssync_section(results: dict[str, Any]) -> str:
    """Return the dnssync section: update-to-answer latency and the cold start."""
    heading = "## dnssync\n\n"
    entry = _entry(results, "dnssync")
    if entry.get("status") != "ok":
        return heading + _not_run_text(entry)
    dnssync = entry["result"]
    latency, cold = dnssync["latency"], dnssync["cold_start"]
    parts = [
        heading + "kube-apiserver, the DNS etcd and CoreDNS (the default Corefile, no cache) on "
        "loopback. Latency: one pods/status patch writes network-status and Ready for a new "
        "vertex pod, and the clock runs until CoreDNS answers that pod's own name with its "
        "address, polled every 2 ms. Cold start: the pods exist, Ready, before `numaflow-rdma "
        "dnssync` starts; the clock runs from the process start until the DNS etcd holds one "
        "record per pod, and resident memory is sampled every 100 ms.",
        _table(
            ("measure", "value"),
            [
                ("status updates timed", str(latency["updates"])),
                ("not answered within 10 s", str(latency["missed"])),
                ("latency p50", f"{_number(latency['latency_ms']['p50'], 1)} ms"),
                ("latency p99", f"{_number(latency['latency_ms']['p99'], 1)} ms"),
                ("latency max", f"{_number(latency['latency_ms']['max'], 1)} ms"),
                ("cold start: pods", f"{cold['pods']:,}"),
                ("cold start: records written", f"{cold['records']:,}"),
                ("cold start: converged after", f"{_number(cold['converged_s'], 2)} s"),
                ("cold start: peak resident memory", f"{cold['peak_rss_bytes'] / 1e6:.0f} MB"),
                (
                    "creating the pods took (not part of the cold start)",
                    f"{cold['pod_creation_s']:.1f} s",
                ),
            ],
        ),
    ]
    return "\n\n".join(parts)


def scaling_section(results: dict[str, Any], image_dir: Path) -> str:
    """Return the section with throughput as senders and receivers grow."""
    heading = "## Scaling\n\n"
    entry = _entry(results, "scaling")
    parts = [heading.rstrip()]
    if entry.get("status") != "ok":
        parts.append("Transport: " + _not_run_text(entry))
    else:
        scaling = entry["result"]
        parts.append(
            f"Transport throughput with N senders and M receivers ({scaling['frame_label']} frames, "
            f"{scaling['duration_s']:g} s, saturated): every sender spreads its frames over all "
            "receivers. GB/s is the sum over receivers."
        )
        rows = []
        series: dict[str, tuple[list[float], list[float]]] = {}
        layouts = [f"{row['senders']}x{row['receivers']}" for row in scaling["rows"]]
        layout_order = list(dict.fromkeys(layouts))
        for row in scaling["rows"]:
            layout = f"{row['senders']}x{row['receivers']}"
            if "error" in row:
                rows.append(
                    [row["backend"], layout, "failed: " + _short(row["error"], 120), "", ""]
                )
                continue
            rows.append(
                [
                    row["backend"],
                    layout,
                    _number(row["fps"], 1),
                    _number(row["gbps"], 3),
                    str(row["lost"]),
                ]
            )
            xs, ys = series.setdefault(f"{row['backend']} backend", ([], []))
            xs.append(float(layout_order.index(layout)))
            ys.append(row["gbps"])
        parts.append(_table(("backend", "senders x receivers", "frames/s", "GB/s", "lost"), rows))
        if series:
            _plot_lines(
                image_dir / "scaling-transport.png",
                "Transport throughput against senders x receivers",
                "senders x receivers",
                "GB/s",
                series,
                xticks=layout_order,
            )
            parts.append(f"![Transport throughput by layout]({IMAGE_DIR}/scaling-transport.png)")
    parts.append(
        "Webhook latency as the request rate grows is plotted in the admission section above."
    )
    return "\n\n".join(parts)


def gpu_section(results: dict[str, Any]) -> str:
    """Return the GPU section: the saved GPU results, or a note that none were given."""
    heading = "## GPU\n\n"
    gpu = results.get("gpu")
    if not gpu:
        return heading + (
            "Not run: no GPU results were given. On a machine with an NVIDIA GPU, run "
            "`bench/gpu_frames.py` and save its JSON output as "
            "`docs/benchmarks/gpu-frames.json`, or pass it with `--gpu-results FILE`."
        )
    parts = [heading + f"From `{gpu['source']}`."]
    data = gpu["data"]
    rows = data.get("rows") if isinstance(data, dict) else data
    if isinstance(rows, list) and rows and all(isinstance(row, dict) for row in rows):
        keys = list(dict.fromkeys(key for row in rows for key in row))
        parts.append(_table(keys, [[_cell(row.get(key)) for key in keys] for row in rows]))
    if isinstance(data, dict):
        scalars = [(key, _cell(value)) for key, value in data.items() if key != "rows"]
        if scalars:
            parts.append(_table(("field", "value"), scalars))
    return "\n\n".join(parts)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return _number(value, 3)
    if isinstance(value, dict | list):
        return _short(str(value), 200)
    return str(value)


def limits_section(results: dict[str, Any], verdicts: list[Verdict]) -> str:
    """Return, for each missed target, the counters the run measured about what limits it."""
    from bench import limits

    missed = [verdict for verdict in verdicts if verdict.status == MISSED]
    heading = "## What limits the missed targets\n\n"
    if not missed:
        met = sum(verdict.status == MET for verdict in verdicts)
        return heading + f"No target was missed ({met} met, {len(verdicts) - met} not measured)."
    return heading + "\n\n".join(limits.explain(verdict, results) for verdict in missed)


def write_report(results: dict[str, Any], output_dir: Path) -> Path:
    """Write the page and its plots; return the page's path."""
    image_dir = output_dir / IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    verdicts = targets.all_verdicts(results)
    sections = [
        "# Benchmarks",
        "Measured by `make bench`, which runs `python -m bench` and rewrites this page, its "
        f"plots and `{IMAGE_DIR}/results.json`. `make bench-smoke` runs a short version of "
        "every benchmark into `build/bench-smoke/` instead. GB means 10^9 bytes; MiB means 2^20.",
        machine_section(results),
        summary_section(verdicts),
        frames_section(results, image_dir),
        peers_section(results, image_dir),
        admission_section(results, image_dir),
        dnssync_section(results),
        scaling_section(results, image_dir),
        gpu_section(results),
        limits_section(results, verdicts),
    ]
    page = output_dir / "benchmarks.md"
    page.write_text("\n\n".join(sections) + "\n")
    return page
