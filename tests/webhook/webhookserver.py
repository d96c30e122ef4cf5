"""The real ``numaflow-rdma webhook`` command as a test server: gunicorn over TLS on loopback."""

from __future__ import annotations

import ssl
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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


def start_webhook_server(
    directory: Path, arguments: Sequence[str], workers: int = 2
) -> RunningWebhook:
    """Start ``numaflow-rdma webhook`` with a new CA and certificate; wait until ``/readyz`` is ok.

    The caller stops the returned process.
    """
    ca = certs.make_ca("webhook test CA")
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca.certificate_pem)
    certificate_path, key_path = write_serving_pair(ca, directory)
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
    process = ManagedProcess("webhook", command, directory / f"webhook-{port}.log")
    webhook = RunningWebhook(
        f"https://{LOOPBACK}:{port}", ca, ca_path, certificate_path, key_path, process
    )
    process.start()
    try:
        process.wait_ready(webhook.is_ready, timeout=30)
    except BaseException:
        process.stop()
        raise
    return webhook
