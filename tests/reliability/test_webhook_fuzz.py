"""Fuzzing the webhook: generated AdmissionReviews in process and over HTTPS to the real server.

Every response keeps the properties of ``reviewfuzz.check_response``: never
a 5xx, a well-formed AdmissionReview with the request's uid, and no patch
for a pod that is not a vertex pod or a request that is not a pod CREATE.
Every patch applies to the pod it was made for, and the webhook run again
on its own output returns no patch. Over HTTPS the gunicorn workers must
keep their PIDs: a worker that crashed would have been replaced.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import http.client
import json
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from reviewfuzz import (
    NETWORK,
    RESOURCE,
    WEBHOOK_ARGUMENTS,
    apply_patch,
    check_response,
    malformed_bodies,
    mutated_reviews,
    review_of,
)
from runsize import record_figures, scaled
from webhookpods import admission_review, vertex_pod
from webhookserver import RunningWebhook, start_webhook_server

from numaflow_rdma.controlplane.process import LOOPBACK
from numaflow_rdma.webhook.app import create_app
from numaflow_rdma.webhook.injection import Settings
from numaflow_rdma.webhook.nad import fixed_resource_name

SUITE = "webhook"


def fuzz_settings(examples: int) -> settings:
    """Return Hypothesis settings for ``examples`` generated bodies, with no time limit per body."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    app = create_app(Settings(network=NETWORK).validate(), fixed_resource_name(RESOURCE))
    return app.test_client()


def post_in_process(client: FlaskClient, body: bytes, content_type: str) -> tuple[int, bytes]:
    response = client.post("/mutate", data=body, content_type=content_type)
    return response.status_code, response.get_data()


def parsed_review(body: bytes) -> Any:
    """Return the decoded body if it is a JSON object with a string uid, else None."""
    try:
        review = json.loads(body)
    except (ValueError, RecursionError):
        return None
    request = review.get("request") if isinstance(review, dict) else None
    uid = request.get("uid") if isinstance(request, dict) else None
    return review if isinstance(uid, str) and uid else None


def exchange_review(post: Any, review: dict[str, Any], tally: collections.Counter[str]) -> None:
    """Post one review, check the response, and check the webhook again on its patched pod."""
    status, body = post(json.dumps(review).encode(), "application/json")
    tally["requests"] += 1
    tally[f"http_{status}"] += 1
    patch = check_response(review, status, body, tally)
    if patch is None:
        return
    tally["patches"] += 1
    patched = apply_patch(review["request"]["object"], patch)
    again = review_of(review, patched)
    status, body = post(json.dumps(again).encode(), "application/json")
    tally["requests"] += 1
    tally[f"http_{status}"] += 1
    assert status == 200, body
    answer = json.loads(body)["response"]
    assert answer["allowed"], answer
    assert "patch" not in answer, f"the webhook patched its own output again: {answer}"
    tally["reinvocations"] += 1


def exchange_malformed(
    post: Any, body: bytes, content_type: str, tally: collections.Counter[str]
) -> None:
    status, answer = post(body, content_type)
    tally["requests"] += 1
    tally[f"http_{status}"] += 1
    review = parsed_review(body) if content_type == "application/json" else None
    if review is None:
        assert status == 400, (
            f"HTTP {status} for a body that is no AdmissionReview: {answer[:500]!r}"
        )
        return
    check_response(review, status, answer, tally)


def test_mutated_reviews_in_process(client: FlaskClient) -> None:
    tally: collections.Counter[str] = collections.Counter()

    def post(body: bytes, content_type: str) -> tuple[int, bytes]:
        return post_in_process(client, body, content_type)

    @fuzz_settings(scaled(400, 6_000))
    @given(review=mutated_reviews())
    def exchange(review: dict[str, Any]) -> None:
        exchange_review(post, review, tally)

    exchange()
    record_figures(SUITE, "mutated_in_process", dict(tally))
    assert tally["patches"] > 0


def test_malformed_bodies_in_process(client: FlaskClient) -> None:
    tally: collections.Counter[str] = collections.Counter()

    def post(body: bytes, content_type: str) -> tuple[int, bytes]:
        return post_in_process(client, body, content_type)

    @fuzz_settings(scaled(200, 3_000))
    @given(case=malformed_bodies())
    def exchange(case: tuple[bytes, str]) -> None:
        exchange_malformed(post, *case, tally)

    exchange()
    record_figures(SUITE, "malformed_in_process", dict(tally))


# Over HTTPS to the real gunicorn server.


class HttpsClient:
    """One kept-alive HTTPS connection to the webhook, opened again whenever the server closes it."""

    def __init__(self, webhook: RunningWebhook) -> None:
        self.port = int(webhook.url.rsplit(":", 1)[1])
        self.context = webhook.ssl_context()
        self.connection: http.client.HTTPSConnection | None = None
        self.reconnects = 0

    def post(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPSConnection(
                    LOOPBACK, self.port, context=self.context, timeout=30
                )
            try:
                self.connection.request(
                    "POST", "/mutate", body=body, headers={"Content-Type": content_type}
                )
                response = self.connection.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException, ssl.SSLError) as error:
                # The server may close a kept-alive connection between requests; try once more.
                self.close()
                self.reconnects += 1
                if attempt:
                    raise AssertionError(
                        f"the webhook dropped the connection twice: {error}"
                    ) from error
                continue
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def worker_pids(webhook: RunningWebhook) -> set[int]:
    """Return the PIDs of the gunicorn workers, the children of the server process."""
    assert webhook.process.pid is not None, "the webhook server process is gone"
    return {child.pid for child in psutil.Process(webhook.process.pid).children()}


@pytest.fixture(scope="module")
def https_webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWebhook]:
    directory: Path = tmp_path_factory.mktemp("fuzzed-webhook")
    webhook = start_webhook_server(directory, WEBHOOK_ARGUMENTS, workers=2)
    try:
        yield webhook
    finally:
        webhook.process.stop()


def check_workers_survived(webhook: RunningWebhook, before: set[int]) -> None:
    after = worker_pids(webhook)
    assert after == before, f"gunicorn workers were replaced: before {before}, after {after}"
    log = webhook.process.log_path.read_text(errors="replace")
    # Flask logs this line with the traceback of every request that ended in HTTP 500.
    assert "Exception on /mutate" not in log, log[-4000:]
    assert "WORKER TIMEOUT" not in log, log[-4000:]


def test_reviews_over_https(https_webhook: RunningWebhook) -> None:
    workers = worker_pids(https_webhook)
    assert len(workers) == 2
    client = HttpsClient(https_webhook)
    tally: collections.Counter[str] = collections.Counter()

    @fuzz_settings(scaled(100, 1_500))
    @given(review=mutated_reviews())
    def exchange_mutated(review: dict[str, Any]) -> None:
        exchange_review(client.post, review, tally)

    @fuzz_settings(scaled(50, 500))
    @given(case=malformed_bodies())
    def exchange_bad(case: tuple[bytes, str]) -> None:
        exchange_malformed(client.post, *case, tally)

    try:
        exchange_mutated()
        exchange_bad()
    finally:
        client.close()
    check_workers_survived(https_webhook, workers)
    tally["reconnects"] = client.reconnects
    tally["workers"] = len(workers)
    record_figures(SUITE, "over_https", dict(tally))


def _tls_socket(webhook: RunningWebhook) -> ssl.SSLSocket:
    port = int(webhook.url.rsplit(":", 1)[1])
    raw = socket.create_connection((LOOPBACK, port), timeout=10)
    context: ssl.SSLContext = webhook.ssl_context()
    return context.wrap_socket(raw, server_hostname=LOOPBACK)


def _read_all(sock: ssl.SSLSocket, limit: float = 10.0) -> bytes:
    """Read until the server closes or ``limit`` seconds pass."""
    chunks = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionError, ssl.SSLError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


# A request whose declared body is longer than what the client sends.
TRUNCATED_REQUEST = (
    b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 1000\r\n\r\n{"apiVersion":'
)

BROKEN_REQUESTS = {
    # A chunked body whose chunk size is not hexadecimal.
    "bad-chunk": b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    # Two lengths that disagree, the start of request smuggling.
    "two-lengths": b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
    "negative-length": b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: -5\r\n\r\n{}",
    "no-request-line": b"\r\n\r\n\r\n",
    "binary-line": b"\x00\xff\xfe POST /mutate\r\n\r\n",
    "long-header": b"POST /mutate HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"a" * 70_000 + b"\r\n\r\n",
    "many-headers": b"POST /mutate HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-%d: y\r\n" % index for index in range(500))
    + b"\r\n",
    "http-0.9": b"GET /healthz\r\n\r\n",
}


def test_broken_http_requests_over_https(https_webhook: RunningWebhook) -> None:
    workers = worker_pids(https_webhook)
    statuses: dict[str, str] = {}
    for name, raw in BROKEN_REQUESTS.items():
        with _tls_socket(https_webhook) as sock:
            sock.settimeout(10)
            try:
                sock.sendall(raw)
                reply = _read_all(sock)
            except (ConnectionError, ssl.SSLError) as error:
                reply = f"closed: {type(error).__name__}".encode()
        first_line = reply.split(b"\r\n", 1)[0].decode(errors="replace")
        statuses[name] = first_line or "(closed)"
        assert " 500 " not in first_line, f"{name}: {first_line}"

    # A client that hangs up in the middle of its body.
    with _tls_socket(https_webhook) as sock:
        sock.sendall(TRUNCATED_REQUEST)

    # A TLS handshake that is abandoned, and a connection closed before any byte.
    port = int(https_webhook.url.rsplit(":", 1)[1])
    for _ in range(5):
        with socket.create_connection((LOOPBACK, port)) as plain:
            plain.sendall(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")
        _tls_socket(https_webhook).close()

    client = HttpsClient(https_webhook)
    try:
        status, body = client.post(
            json.dumps(admission_review(vertex_pod())).encode(), "application/json"
        )
    finally:
        client.close()
    assert status == 200, body
    check_workers_survived(https_webhook, workers)
    record_figures(SUITE, "broken_http", {"requests": len(BROKEN_REQUESTS) + 12, **statuses})


def _stall(webhook: RunningWebhook, kind: str, release: threading.Event) -> None:
    """Open a connection that stops at ``kind`` and keep it open until ``release`` is set."""
    port = int(webhook.url.rsplit(":", 1)[1])
    with socket.create_connection((LOOPBACK, port), timeout=30) as raw:
        if kind == "silent":
            release.wait(30)
            return
        if kind == "handshake":
            raw.sendall(b"\x16\x03\x01")  # the first bytes of a TLS ClientHello
            release.wait(30)
            return
        with webhook.ssl_context().wrap_socket(raw, server_hostname=LOOPBACK) as sock:
            sock.sendall(TRUNCATED_REQUEST if kind == "body" else b"POST /mutate HTTP/1.1\r\n")
            release.wait(30)


# Stalled connections for a server of one worker with two threads, more than it has
# threads. Without timeouts on reads each would keep its thread blocked for as long as
# it stays open. With them, each holds a thread for up to webhook.tls.CLIENT_IO_TIMEOUT
# (5 s), so stalled clients delay admission by about 5 s per round of threads they fill.
STALLS = ["body", "headers", "handshake"]


def test_stalled_clients_do_not_block_admission(tmp_path: Path) -> None:
    """Clients that stop mid-handshake, mid-headers or mid-body cannot hold up admission."""
    https_webhook = start_webhook_server(tmp_path, WEBHOOK_ARGUMENTS, workers=1)
    try:
        check_admission_behind_stalls(https_webhook)
    finally:
        https_webhook.process.stop()


def check_admission_behind_stalls(https_webhook: RunningWebhook) -> None:
    workers = worker_pids(https_webhook)
    release = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(len(STALLS)) as pool:
        stalled = [pool.submit(_stall, https_webhook, kind, release) for kind in STALLS]
        try:
            # Let the stalled clients reach the server first.
            time.sleep(1.0)
            started = time.monotonic()
            client = HttpsClient(https_webhook)
            try:
                status, body = client.post(
                    json.dumps(admission_review(vertex_pod())).encode(), "application/json"
                )
            finally:
                client.close()
            waited = time.monotonic() - started
        finally:
            release.set()
        for future in stalled:
            # A stalled client's connection may be closed by the server; that is the point.
            with contextlib.suppress(OSError):
                future.result(timeout=60)
    assert status == 200, body
    # The API server gives a webhook 10 seconds by default.
    assert waited < 10, f"an admission request waited {waited:.1f} s behind stalled clients"
    check_workers_survived(https_webhook, workers)
    record_figures(
        SUITE,
        "stalled_clients",
        {"stalled_connections": len(STALLS), "wait_seconds": round(waited, 2)},
    )


ATHERIS_HARNESS = Path(__file__).with_name("atheris_parsers.py")


def test_parsers_with_atheris(tmp_path: Path) -> None:
    """Coverage-guided fuzzing of the Multus, Vertex object and pod-name parsers."""
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    subprocess.run([sys.executable, ATHERIS_HARNESS, "seed", corpus], check=True, timeout=60)
    runs = scaled(50_000, 2_000_000)
    result = subprocess.run(
        [
            sys.executable,
            ATHERIS_HARNESS,
            f"-runs={runs}",
            f"-max_total_time={scaled(60, 600)}",
            f"-artifact_prefix={tmp_path}/",
            corpus,
        ],
        capture_output=True,
        text=True,
        timeout=scaled(180, 900),
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    done = re.search(r"Done (\d+) runs in (\d+) second", output)
    assert done is not None, output[-3000:]
    record_figures(
        SUITE,
        "atheris_parsers",
        {"inputs": int(done.group(1)), "seconds": int(done.group(2))},
    )
