"""The benchmark suite's pure parts: statistics, stamps, parsing, targets and the page."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from bench import admission, jetstream, perftest, report, targets
from bench.common import FRAME_SIZES, MIB, summarize
from bench.frame_worker import END_OF_STREAM, FrameRecorder, FrameSource, SendBudget

FRAME_1080P = FRAME_SIZES["1080p RGB"]


def test_summarize_percentiles() -> None:
    summary = summarize(list(range(1, 101)))
    assert summary["count"] == 100
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["max"] == 100


def test_summarize_empty_is_nan() -> None:
    summary = summarize([])
    assert summary["count"] == 0
    assert math.isnan(summary["p99"])


def test_recorder_checks_stamps_and_skips_warmup() -> None:
    source = FrameSource(1024)
    recorder = FrameRecorder(1024, warmup=2, max_frames=10)
    for sequence in range(5):
        assert recorder.record(bytes(source.stamp(sequence)))
    corrupt = bytearray(source.stamp(5))
    corrupt[-1] ^= 0xFF
    assert recorder.record(bytes(corrupt))
    assert not recorder.record(bytes(source.stamp(END_OF_STREAM)))

    result = recorder.result()
    assert result["received"] == 5
    assert result["measured"] == 3
    assert result["bad_frames"] == 1
    assert result["ended"]
    assert result["latency_ms"]["count"] == 3
    assert result["latency_ms"]["p50"] >= 0


def test_recorder_rejects_wrong_size() -> None:
    recorder = FrameRecorder(1024, warmup=0, max_frames=10)
    assert recorder.record(bytes(FrameSource(2048).stamp(0)))
    assert recorder.result()["bad_frames"] == 1


def test_send_budget_caps_frames() -> None:
    budget = SendBudget(warmup=2, duration=60.0, max_frames=3)
    allowed = [index for index in range(10) if budget.allows(index)]
    assert allowed == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("size", "expected"),
    [(MIB, 2 * MIB), (1000, MIB), (FRAME_1080P, 6 * MIB), (FRAME_SIZES["4K RGB"], 24 * MIB)],
)
def test_max_payload_fits_frame(size: int, expected: int) -> None:
    assert jetstream.max_payload_for(size) == expected


def test_max_payload_over_ceiling() -> None:
    with pytest.raises(ValueError, match="ceiling"):
        jetstream.max_payload_for(64 * MIB)


def test_perftest_final_line_parsed() -> None:
    output = (
        "|    Stage     | # iterations | 50.0%ile | average | overall |\n"
        "Final:                   200      0.371  4918.931  4918.931      203.30     203.30"
        "         203         203\n"
    )
    figures = perftest.parse_final_line(output)
    assert figures["iterations"] == 200
    assert figures["bandwidth_mib_per_s"] == pytest.approx(203.30)
    assert figures["gbps"] == pytest.approx(203.30 * MIB / 1e9)


def test_perftest_output_without_final_row() -> None:
    with pytest.raises(ValueError, match="Final"):
        perftest.parse_final_line("ucx_perftest: connection refused\n")


def test_build_error_condensed() -> None:
    message = (
        "'go install example.org/tool@v1.0.0' failed:\n"
        "go: example.org/tool@v1.0.0: reading https://proxy.example/x/@v/v1.0.0.info: 403 Forbidden\n"
        "\tserver response: This module version is not available.\n"
    )
    assert admission.condense_build_error(message) == (
        "'go install example.org/tool@v1.0.0' failed: the Go module proxy answered "
        "403 Forbidden: This module version is not available."
    )


def _frame_row(path: str, size: int, fps: float, p99: float = 1.0) -> dict[str, Any]:
    receiver = {
        "fps": fps,
        "gbps": fps * size / 1e9,
        "received": 100,
        "elapsed_s": 1.0,
        "latency_ms": {"p50": p99 / 2, "p99": p99, "max": p99},
        "cpu_s": {"user": 0.5, "system": 0.1},
    }
    sender = {
        "sent": 100,
        "wall_s": 1.0,
        "cpu_s": {"user": 0.4, "system": 0.1},
        "round_trip_ms": {"p50": p99 / 2, "p99": p99, "max": p99},
    }
    return {
        "path": path,
        "size": size,
        "rate": 0.0,
        "receiver": receiver,
        "sender": sender,
        "server_cpu_s": 0.0,
        "lost": 0,
        "cpu_s_per_gb": 1.0,
    }


def synthetic_results() -> dict[str, Any]:
    """Return results shaped like a full run's, with made-up figures."""
    saturated = []
    for size in FRAME_SIZES.values():
        saturated += [
            _frame_row("transport-ucx", size, 500.0),
            _frame_row("transport-tcp", size, 400.0),
            _frame_row("jetstream", size, 30.0),
            _frame_row("socket", size, 450.0),
        ]
    paced = [
        _frame_row("transport-ucx", MIB, 100.0, p99=1.0),
        _frame_row("transport-tcp", MIB, 100.0, p99=2.0),
        _frame_row("socket-pingpong", MIB, 100.0, p99=1.0),
    ]
    admission_row = {
        "rate": 200,
        "throughput_per_s": 200.0,
        "latency_ms": {"p50": 2.0, "p99": 5.0, "max": 9.0},
        "error_count": 0,
        "errors": {},
        "server_cpu_ms_per_request": 2.0,
        "server_cores_busy": 0.4,
        "send_lag_ms": {"p99": 0.5},
        "generator_cpu_s": {"user": 1.0, "system": 0.1},
    }
    return {
        "machine": {
            "date": "2026-01-01 00:00 UTC",
            "command": "python -m bench",
            "cpu_model": "test CPU",
            "logical_cpus": 2,
            "memory_bytes": 2**34,
            "operating_system": "Debian",
            "kernel": "6.1",
            "load_average": [0.1, 0.1, 0.1],
            "gpus": [],
            "python": "3.11",
            "git_commit": "abc",
            "packages": {"numpy": "2"},
            "programs": {"nats-server": "v2"},
        },
        "smoke": False,
        "elapsed_s": 100.0,
        "gpu": None,
        "benchmarks": {
            "frames": {
                "status": "ok",
                "result": {
                    "saturated": saturated,
                    "paced": paced,
                    "unavailable": {},
                    "duration_s": 5.0,
                    "paced_duration_s": 8.0,
                    "transport": {},
                },
            },
            "perftest": {
                "status": "ok",
                "result": {
                    "rows": [
                        {"size": size, "selection": selection, "gbps": 4.0}
                        for size in FRAME_SIZES.values()
                        for selection in ("tcp", "default")
                    ],
                    "ucx_version": "1.21.0",
                    "environment": {},
                    "iterations": {str(size): 10 for size in FRAME_SIZES.values()},
                },
            },
            "admission": {
                "status": "ok",
                "result": {
                    "rows": [
                        {**admission_row, "server": admission.WEBHOOK},
                        {
                            **copy.deepcopy(admission_row),
                            "server": admission.INJECTOR,
                            "latency_ms": {"p50": 1.0, "p99": 4.0, "max": 6.0},
                        },
                    ],
                    "corpus_size": 22,
                    "duration_s": 15.0,
                    "unavailable": {},
                    "profile": [("handle (app.py:10)", 12.5)],
                },
            },
            "dnssync": {
                "status": "ok",
                "result": {
                    "latency": {
                        "updates": 10,
                        "missed": 0,
                        "latency_ms": {"p50": 30.0, "p99": 50.0, "max": 60.0},
                    },
                    "cold_start": {
                        "pods": 5000,
                        "records": 5000,
                        "converged_s": 20.0,
                        "peak_rss_bytes": 150e6,
                        "rss_after_bytes": 140e6,
                        "timeout_s": 250.0,
                        "pod_creation_s": 60.0,
                    },
                },
            },
            "scaling": {"status": "skipped", "reason": "the transport cannot run here"},
        },
    }


def test_targets_judged_from_results() -> None:
    verdicts = {verdict.key: verdict for verdict in targets.all_verdicts(synthetic_results())}
    assert verdicts["frames-ucx"].status == targets.MET
    assert verdicts["frames-tcp"].status == targets.MET
    assert verdicts["perftest"].status == targets.MISSED
    assert verdicts["sockets-ucx"].status == targets.MET
    assert verdicts["sockets-tcp"].status == targets.MISSED
    assert verdicts["latency-ucx"].status == targets.MET
    assert verdicts["latency-tcp"].status == targets.MISSED
    assert verdicts["admission-p99"].status == targets.MET
    assert verdicts["admission-vs-injector"].status == targets.MISSED
    assert verdicts["dnssync-latency"].status == targets.MET
    assert verdicts["dnssync-cold-time"].status == targets.MISSED
    assert verdicts["dnssync-cold-memory"].status == targets.MET


def test_targets_not_measured_when_skipped() -> None:
    results = synthetic_results()
    results["benchmarks"]["frames"] = {"status": "skipped", "reason": "no root"}
    verdicts = {verdict.key: verdict for verdict in targets.all_verdicts(results)}
    assert verdicts["frames-ucx"].status == targets.NOT_MEASURED
    assert verdicts["frames-ucx"].detail == "no root"


def test_report_written_with_plots(tmp_path: Path) -> None:
    page = report.write_report(synthetic_results(), tmp_path)
    text = page.read_text()
    for heading in (
        "## Machine and software",
        "## Targets",
        "## Frames: direct path against the inter-step buffer",
        "## Transport against its peers",
        "## Admission: webhook against network-resources-injector",
        "## dnssync",
        "## Scaling",
        "## GPU",
        "## What limits the missed targets",
    ):
        assert heading in text
    assert "Not run: the transport cannot run here" in text
    assert "no GPU results were given" in text
    for image in ("frames-fps.png", "peers-gbps.png", "admission-latency.png"):
        assert (tmp_path / "benchmarks" / image).stat().st_size > 0
        assert f"benchmarks/{image}" in text


def test_report_includes_gpu_rows(tmp_path: Path) -> None:
    results = synthetic_results()
    results["gpu"] = {
        "source": "gpu-frames.json",
        "data": {"rows": [{"size": 6220800, "gbps": 40.5}], "gpu": "H200"},
    }
    text = report.write_report(results, tmp_path).read_text()
    assert "From `gpu-frames.json`" in text
    assert "40.500" in text
    assert "H200" in text
