"""Fixtures that run the real ``numaflow-rdma webhook`` command: gunicorn over TLS on loopback."""

from __future__ import annotations

import ssl
import sys
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from numaflow_rdma import certs
from numaflow_rdma.controlplane.process import LOOPBACK, ManagedProcess, free_port


@dataclass
class RunningWebhook:
    """A webhook server process and what a client needs to reach it."""

    url: str
    ca: certs.KeyPair
    ca_path: Path
    certificate_path: Path
    key_path: Path
    process: ManagedProcess

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def is_ready(self) -> bool:
        with urllib.request.urlopen(
            f"{self.url}/readyz", timeout=2, context=self.ssl_context()
        ) as response:
            return bool(response.status == 200)


def write_serving_pair(ca: certs.KeyPair, directory: Path, days: int = 30) -> tuple[Path, Path]:
    """Write a serving certificate for 127.0.0.1 and localhost signed by ``ca``."""
    pair = certs.issue_certificate(ca, "webhook", hosts=[LOOPBACK, "localhost"], days=days)
    certificate_path, key_path = directory / "tls.crt", directory / "tls.key"
    pair.write(certificate_path, key_path)
    return certificate_path, key_path


@pytest.fixture
def start_webhook(tmp_path: Path) -> Iterator[Callable[..., RunningWebhook]]:
    """Return a function that starts ``numaflow-rdma webhook`` and waits until ``/readyz`` is ok.

    Every server started through it is stopped by its PID when the test ends.
    """
    started: list[ManagedProcess] = []

    def start(arguments: Sequence[str], workers: int = 2) -> RunningWebhook:
        ca = certs.make_ca("webhook test CA")
        ca_path = tmp_path / "ca.crt"
        ca_path.write_bytes(ca.certificate_pem)
        certificate_path, key_path = write_serving_pair(ca, tmp_path)
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "numaflow_rdma.cli",
            "webhook",
            "--bind-address",
            LOOPBACK,
            "--port",
            str(port),
            "--tls-cert-file",
            str(certificate_path),
            "--tls-key-file",
            str(key_path),
            "--workers",
            str(workers),
            "--threads",
            "2",
            *arguments,
        ]
        process = ManagedProcess("webhook", command, tmp_path / f"webhook-{port}.log")
        webhook = RunningWebhook(
            f"https://{LOOPBACK}:{port}", ca, ca_path, certificate_path, key_path, process
        )
        process.start()
        started.append(process)
        process.wait_ready(webhook.is_ready, timeout=30)
        return webhook

    yield start
    for process in started:
        process.stop()
