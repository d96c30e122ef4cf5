"""The options of ``numaflow-rdma demo`` and the settings they make."""

from __future__ import annotations

import argparse
import os

import pytest

from numaflow_rdma.config import ConfigError
from numaflow_rdma.demo import command
from numaflow_rdma.demo.platform import check_prerequisites
from numaflow_rdma.demo.progress import DemoError
from numaflow_rdma.demo.settings import DemoSettings


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_make_valid_settings() -> None:
    settings = command.settings_from_args(parse())

    assert settings == DemoSettings()
    assert settings.frames_each_camera == 225
    assert settings.replace


def test_environment_sets_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_DEMO_CAMERAS", "6")
    monkeypatch.setenv("NUMAFLOW_RDMA_DEMO_REPLACE", "false")
    monkeypatch.setenv("NUMAFLOW_RDMA_DEMO_BACKEND", "tcp")

    settings = command.settings_from_args(parse())

    assert settings.cameras == 6
    assert not settings.replace
    assert settings.backend == "tcp"


def test_frames_override_duration() -> None:
    settings = command.settings_from_args(parse("--frames", "12", "--fps", "4"))

    assert settings.frames_each_camera == 12
    assert settings.streaming_seconds == 3.0


def test_replacement_falls_mid_clip() -> None:
    settings = DemoSettings(duration=30, fps=5, clip_seconds=2)

    assert settings.replacement_time == 13.0
    assert DemoSettings(duration=30, clip_seconds=0).replacement_time == 12.0
    assert DemoSettings(duration=30, replace_after=5).replacement_time == 5.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fps", "0"], "invalid frame rate"),
        (["--cameras", "0"], "invalid camera count"),
        (["--replace-after", "99"], "invalid replacement time"),
        (["--namespace", "Bad_Name"], "invalid namespace"),
        (["--clip-seconds", "-1"], "invalid clip length"),
        (["--record-ttl", "0"], "invalid record TTL"),
    ],
)
def test_invalid_options_raise(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        command.settings_from_args(parse(*argv))


def test_non_root_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    with pytest.raises(DemoError) as raised:
        check_prerequisites(DemoSettings())

    assert "needs root" in raised.value.message
    assert "sudo make demo" in raised.value.advice
