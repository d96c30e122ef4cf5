"""The serving context that follows certificate rotation on disk."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

from numaflow_rdma import certs
from numaflow_rdma.webhook.tls import ReloadingServerContext


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write_pair(directory: Path, days: int) -> tuple[Path, Path]:
    ca = certs.make_ca("tls test CA")
    pair = certs.issue_certificate(ca, "webhook", hosts=["127.0.0.1"], days=days)
    certificate, key = directory / "tls.crt", directory / "tls.key"
    pair.write(certificate, key)
    # Make each rewrite visible even within one clock tick of the file system.
    stamp = os.stat(certificate).st_mtime_ns + days * 1_000_000
    os.utime(certificate, ns=(stamp, stamp))
    return certificate, key


def test_reload_after_rotation(tmp_path: Path) -> None:
    certificate, key = write_pair(tmp_path, days=10)
    clock = Clock()
    reloading = ReloadingServerContext(certificate, key, check_interval=1.0, clock=clock)
    first = reloading.context()
    first_expiry = reloading.expires

    write_pair(tmp_path, days=20)
    assert reloading.context() is first  # not checked again within the interval
    clock.now += 1.5
    second = reloading.context()
    assert second is not first
    assert reloading.reloads == 1
    assert reloading.expires - first_expiry > datetime.timedelta(days=9)
    assert reloading.is_valid()


def test_broken_pair_keeps_loaded_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    certificate, key = write_pair(tmp_path, days=10)
    clock = Clock()
    reloading = ReloadingServerContext(certificate, key, clock=clock)
    first = reloading.context()

    key.write_text("not a key\n")
    clock.now += 2
    assert reloading.context() is first
    clock.now += 2
    assert reloading.context() is first
    assert reloading.reloads == 0
    failures = [record for record in caplog.records if "failed" in record.getMessage()]
    assert len(failures) == 1


def test_expired_certificate_not_valid(tmp_path: Path) -> None:
    certificate, key = write_pair(tmp_path, days=1)
    reloading = ReloadingServerContext(certificate, key)
    assert reloading.is_valid()
    reloading.expires = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    assert not reloading.is_valid()


def test_missing_files_raise(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        ReloadingServerContext(tmp_path / "tls.crt", tmp_path / "tls.key")
