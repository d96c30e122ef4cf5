"""The real ``numaflow-rdma webhook`` server: HTTPS, several workers, certificate rotation."""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from webhookpods import admission_review, vertex_pod
from webhookserver import RunningWebhook, write_serving_pair

from numaflow_rdma.controlplane.process import LOOPBACK

RESOURCE = "rdma/hca_shared_devices_a"
ARGUMENTS = ["--network", "infra/rdma-net", "--resource-name", RESOURCE]


def request(
    webhook: RunningWebhook, method: str, path: str, body: Any = None
) -> tuple[int, bytes, str]:
    """Send one request; return the status, the body and the TLS version used."""
    port = int(webhook.url.rsplit(":", 1)[1])
    connection = http.client.HTTPSConnection(
        LOOPBACK, port, context=webhook.ssl_context(), timeout=10
    )
    try:
        headers = {"Content-Type": "application/json"}
        connection.request(
            method, path, body=None if body is None else json.dumps(body), headers=headers
        )
        sock = connection.sock
        assert isinstance(sock, ssl.SSLSocket)
        version = str(sock.version())
        response = connection.getresponse()
        return response.status, response.read(), version
    finally:
        connection.close()


def peer_certificate(webhook: RunningWebhook) -> x509.Certificate:
    port = int(webhook.url.rsplit(":", 1)[1])
    connection = http.client.HTTPSConnection(
        LOOPBACK, port, context=webhook.ssl_context(), timeout=10
    )
    try:
        connection.connect()
        sock = connection.sock
        assert isinstance(sock, ssl.SSLSocket)
        der = sock.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)
    finally:
        connection.close()


def test_server_mutates_over_tls(start_webhook: Callable[..., RunningWebhook]) -> None:
    webhook = start_webhook(ARGUMENTS)
    status, body, _ = request(webhook, "POST", "/mutate", admission_review(vertex_pod()))
    assert status == 200
    answer = json.loads(body)["response"]
    assert answer["allowed"] is True
    patch = json.loads(base64.b64decode(answer["patch"]))
    assert any(RESOURCE.replace("/", "~1") in op["path"] for op in patch)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_server_rejects_old_tls(start_webhook: Callable[..., RunningWebhook]) -> None:
    webhook = start_webhook(ARGUMENTS, workers=1)
    _, _, version = request(webhook, "GET", "/healthz")
    assert version in ("TLSv1.2", "TLSv1.3")

    # A client that offers TLS 1.1 at most, with every cipher allowed on its side.
    old = webhook.ssl_context()
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    port = int(webhook.url.rsplit(":", 1)[1])
    connection = http.client.HTTPSConnection(LOOPBACK, port, context=old, timeout=10)
    try:
        try:
            connection.connect()
        except ssl.SSLError:
            pass
        else:
            raise AssertionError("a TLS 1.1 handshake succeeded")
    finally:
        connection.close()


def test_server_bad_request_400(start_webhook: Callable[..., RunningWebhook]) -> None:
    webhook = start_webhook(ARGUMENTS, workers=1)
    status, body, _ = request(webhook, "POST", "/mutate", {"apiVersion": "v1", "kind": "Pod"})
    assert status == 400
    assert b"not an AdmissionReview" in body


def test_server_metrics_sum_workers(start_webhook: Callable[..., RunningWebhook]) -> None:
    webhook = start_webhook(ARGUMENTS, workers=2)
    requests = 12
    for _ in range(requests):
        status, _, _ = request(webhook, "POST", "/mutate", admission_review(vertex_pod()))
        assert status == 200
    _, text, _ = request(webhook, "GET", "/metrics")
    lines = [
        line
        for line in text.decode().splitlines()
        if line.startswith("numaflow_rdma_webhook_admissions_total{")
    ]
    injected = [float(line.rsplit(" ", 1)[1]) for line in lines if 'result="injected"' in line]
    assert injected == [float(requests)]
    assert "numaflow_rdma_webhook_admission_duration_seconds_count" in text.decode()


def test_server_reloads_rotated_certificate(start_webhook: Callable[..., RunningWebhook]) -> None:
    webhook = start_webhook(ARGUMENTS, workers=1)
    first = peer_certificate(webhook)

    # Rotate as cert-manager does: a new certificate from the same CA.
    write_serving_pair(webhook.ca, webhook.certificate_path.parent, days=60)
    stamp = time.time_ns() + 1_000_000_000
    os.utime(webhook.certificate_path, ns=(stamp, stamp))
    deadline = time.monotonic() + 15
    rotated = first
    while time.monotonic() < deadline and rotated.serial_number == first.serial_number:
        time.sleep(0.5)
        rotated = peer_certificate(webhook)
    assert rotated.serial_number != first.serial_number
    assert webhook.process.pid is not None
    assert webhook.is_ready()
