"""Settings of one demo run: the workload, the mid-run replacement and where files go."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from numaflow_rdma import names

BACKENDS = ("auto", "tcp", "ucx")
LAYOUTS = ("sidecar", "legacy")

PIPELINE = "video"
SENDING_VERTEX = "decode"
RECEIVING_VERTEX = "infer"
SINK_VERTEX = "out"


class SettingsError(ValueError):
    """A demo setting that cannot be used."""


@dataclass(frozen=True)
class DemoSettings:
    """The settings of one demo run; times are in seconds."""

    duration: float = 45.0
    """How long the cameras stream, unless ``frames_per_camera`` is set."""
    frames_per_camera: int | None = None
    """Frames each camera sends; overrides ``duration``."""
    fps: float = 5.0
    """Frames per second of each camera."""
    cameras: int = 4
    """Cameras, spread over the ``decode`` replicas."""
    clip_seconds: float = 2.0
    """Length of one clip; each clip is a stream with its own id. 0 makes one stream per camera."""
    backend: str = "auto"
    replace: bool = True
    """Delete one ``infer`` pod midway and create its replacement."""
    replace_after: float | None = None
    """Seconds after streaming starts when the pod is deleted; None picks ``replacement_time``."""
    grace_period: int = 0
    """Grace period of that deletion; 0 deletes at once and kills the UDF, as ``--force`` does."""
    link_down: bool = False
    """Take the deleted pod's link down first, as a node failure would, so senders only notice
    the loss by missing heartbeats and the frames sent meanwhile are lost."""
    record_ttl: int = 2
    """TTL of the DNS records, so the longest time a sender takes to see a new pod."""
    layout: str = "sidecar"
    """The fixture layout of Numaflow's pods to create."""
    namespace: str = "video-demo"
    work_dir: Path | None = None
    """Folder for logs, certificates and UDF journals; None makes a temporary one."""
    keep_work_dir: bool = False
    startup_timeout: float = 120.0
    """Seconds each start-up step may take once the programs are built."""

    def validate(self) -> DemoSettings:
        """Return the settings if they describe a run that can happen; raise SettingsError."""
        if self.frames_per_camera is None and not 1.0 <= self.duration <= 3600.0:
            raise SettingsError(
                f"invalid duration {self.duration} s: expected 1 to 3600 seconds"
            )
        if self.frames_per_camera is not None and not 1 <= self.frames_per_camera <= 1_000_000:
            raise SettingsError(
                f"invalid frame count {self.frames_per_camera}: expected 1 to 1000000 per camera"
            )
        if not 0.1 <= self.fps <= 120.0:
            raise SettingsError(f"invalid frame rate {self.fps}: expected 0.1 to 120 per camera")
        if not 1 <= self.cameras <= 64:
            raise SettingsError(f"invalid camera count {self.cameras}: expected 1 to 64")

        if self.clip_seconds < 0:
            raise SettingsError(
                f"invalid clip length {self.clip_seconds} s: expected 0 (one stream per camera) "
                "or more seconds"
            )
        if self.backend not in BACKENDS:
            raise SettingsError(
                f"invalid backend {self.backend!r}: expected one of {', '.join(BACKENDS)}"
            )
        if self.layout not in LAYOUTS:
            raise SettingsError(
                f"invalid layout {self.layout!r}: expected one of {', '.join(LAYOUTS)}"
            )
        if self.replace_after is not None and not 0 < self.replace_after < self.streaming_seconds:
            raise SettingsError(
                f"invalid replacement time {self.replace_after} s: expected more than 0 and less "
                f"than the {self.streaming_seconds:.0f} s the cameras stream"
            )

        if not 0 <= self.grace_period <= 60:
            raise SettingsError(
                f"invalid grace period {self.grace_period} s: expected 0 to 60 seconds"
            )
        if not 1 <= self.record_ttl <= 300:
            raise SettingsError(
                f"invalid record TTL {self.record_ttl} s: expected 1 to 300 seconds"
            )
        try:
            names.validate_label(self.namespace, what="namespace")
        except names.InvalidNameError as error:
            raise SettingsError(str(error)) from error

        if self.startup_timeout < 10:
            raise SettingsError(
                f"invalid start-up timeout {self.startup_timeout} s: expected 10 seconds or more"
            )
        return self

    @property
    def frames_each_camera(self) -> int:
        """Return how many frames each camera sends."""
        if self.frames_per_camera is not None:
            return self.frames_per_camera
        return max(1, round(self.duration * self.fps))

    @property
    def streaming_seconds(self) -> float:
        """Return how long the cameras stream at their frame rate."""
        return self.frames_each_camera / self.fps

    @property
    def clip_frames(self) -> int:
        """Return frames per clip; 0 when each camera is one stream."""
        if self.clip_seconds == 0:
            return 0
        return max(1, math.ceil(self.clip_seconds * self.fps))

    @property
    def replacement_time(self) -> float:
        """Return seconds after streaming starts when the ``infer`` pod is deleted.

        By default that is in the middle of the clip under way at 40 % of the
        run, so the deletion cuts streams short instead of falling between clips.
        """
        if self.replace_after is not None:
            return self.replace_after
        moment = 0.4 * self.streaming_seconds
        if self.clip_seconds > 0:
            middle = (math.floor(moment / self.clip_seconds) + 0.5) * self.clip_seconds
            if middle < self.streaming_seconds:
                moment = middle
        return moment
