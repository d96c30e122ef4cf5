"""How long and how hard each benchmark runs, for the full suite and the smoke run.

The full suite is sized to finish in about 20 minutes on a two-core machine
(an estimate from the durations below and smoke runs). The smoke run checks
in about a minute and a half that every benchmark still works. Its figures
mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.common import MIB


@dataclass(frozen=True)
class Settings:
    """Durations, rates and counts of one suite run."""

    smoke: bool
    # Frames: seconds of measured sending per saturated run and per paced run.
    frame_duration: float
    paced_duration: float
    frame_warmup: int
    # ucx_perftest: bytes to send per run, and the bounds on its iterations.
    perftest_bytes: int
    perftest_min_iterations: int
    # Scaling: seconds per sender-receiver layout, and the layouts.
    scaling_duration: float
    scaling_layouts: tuple[tuple[int, int], ...]
    # Admission: request rates per second and seconds per rate.
    admission_rates: tuple[int, ...]
    admission_duration: float
    # dnssync: status updates timed, and pods of the cold start.
    dnssync_updates: int
    dnssync_cold_pods: int

    def perftest_iterations(self, size: int) -> int:
        """Return ucx_perftest's iterations for a message size: enough for ``perftest_bytes``."""
        return max(self.perftest_min_iterations, min(2000, self.perftest_bytes // size))

    def paced_rate(self, size: int) -> float:
        """Return the paced rate for a frame size: 100 per second for 1 MiB, 30 (video) above."""
        return 100.0 if size <= MIB else 30.0


FULL = Settings(
    smoke=False,
    frame_duration=5.0,
    paced_duration=8.0,
    frame_warmup=5,
    perftest_bytes=2_500_000_000,
    perftest_min_iterations=100,
    scaling_duration=5.0,
    scaling_layouts=((1, 1), (2, 3), (4, 4)),
    admission_rates=(50, 200, 500, 1000),
    admission_duration=15.0,
    dnssync_updates=200,
    dnssync_cold_pods=5000,
)

SMOKE = Settings(
    smoke=True,
    frame_duration=0.3,
    paced_duration=0.3,
    frame_warmup=1,
    perftest_bytes=0,
    perftest_min_iterations=10,
    scaling_duration=0.3,
    scaling_layouts=((1, 1), (2, 3)),
    admission_rates=(50, 200),
    admission_duration=1.0,
    dnssync_updates=3,
    dnssync_cold_pods=20,
)
