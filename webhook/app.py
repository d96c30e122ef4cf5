"""The Flask application: ``POST /mutate`` for the API server, probes and metrics.

Routes:

- ``POST /mutate`` takes an AdmissionReview and returns one;
- ``GET /healthz`` returns ``ok`` while the worker serves;
- ``GET /readyz`` returns ``ok`` once a valid serving certificate is loaded;
- ``GET /metrics`` serves Prometheus metrics, summed over every worker
  process when ``PROMETHEUS_MULTIPROC_DIR`` is set.

A body that is not an AdmissionReview v1 (wrong content type, too large,
unreadable, not JSON or nested too deeply, no ``request.uid``, fields of the
wrong JSON type) gets HTTP 400 with a plain-text message; the API server then
applies the webhook's failure policy.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request
from gunicorn.http.errors import ParseException
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from werkzeug.exceptions import ClientDisconnected

from numaflow_rdma import jsontext
from numaflow_rdma.webhook.admission import (
    AdmissionRequest,
    InvalidReviewError,
    parse_review,
    review_response,
)
from numaflow_rdma.webhook.injection import INJECTED, REJECTED, SKIPPED, Decision, Settings, decide
from numaflow_rdma.webhook.nad import ResourceNameResolver

logger = logging.getLogger(__name__)

# An AdmissionReview of a CREATE carries one object, and etcd stores objects of
# at most 1.5 MiB by default; 4 MiB bounds memory and rejects no storable pod.
MAX_REQUEST_BYTES = 4 * 1024 * 1024

# What reading a broken body raises: gunicorn's errors for bad chunked encoding,
# werkzeug's for a body shorter than its Content-Length, OSError for the socket.
_BODY_READ_ERRORS = (ParseException, ClientDisconnected, OSError)

# Outcomes beyond the policy's: "invalid" for HTTP 400, "error" for HTTP 500.
INVALID = "invalid"
ERROR = "error"

ADMISSIONS = Counter(
    "numaflow_rdma_webhook_admissions_total",
    "Admission requests answered, by result: injected, unchanged, skipped, rejected, "
    "invalid (HTTP 400) or error (HTTP 500).",
    ["result"],
)
DURATION = Histogram(
    "numaflow_rdma_webhook_admission_duration_seconds",
    "Time to answer one POST /mutate, in seconds.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def _metrics_text() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def _log_decision(review: AdmissionRequest, decision: Decision) -> None:
    context: dict[str, Any] = {
        "namespace": review.namespace,
        "pod": review.pod_name,
        "pipeline": decision.identity.pipeline or "",
        "vertex": decision.identity.vertex or "",
        "uid": review.uid,
        "result": decision.outcome,
    }
    if review.dry_run:
        context["dry_run"] = True
    if decision.warnings:
        context["warnings"] = " | ".join(decision.warnings)
    if decision.outcome == REJECTED:
        logger.warning("Rejected the pod: %s.", decision.message, extra=context)
    elif decision.outcome == INJECTED:
        logger.info("Admitted the pod with a patch: %s.", decision.message, extra=context)
    else:
        logger.info("Admitted the pod unchanged: %s.", decision.message, extra=context)


def _review_pod(
    review: AdmissionRequest, settings: Settings, resolve: ResourceNameResolver
) -> Decision:
    if review.kind != "Pod" or review.sub_resource:
        target = f"{review.kind}/{review.sub_resource}" if review.sub_resource else review.kind
        return Decision(SKIPPED, f"not a pod: {target or 'no kind'}")
    if review.operation != "CREATE":
        return Decision(SKIPPED, f"operation {review.operation or '(none)'} is not CREATE")
    if not review.namespace:
        return Decision(REJECTED, "the pod has no namespace", code=400)
    return decide(review.object, review.namespace, settings, resolve)


class _BadRequest(Exception):
    """A request body that gets HTTP 400."""


def _read_review() -> AdmissionRequest:
    if request.mimetype != "application/json":
        raise _BadRequest(
            f"expected Content-Type application/json, got {request.mimetype or 'none'!r}"
        )
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise _BadRequest(
            f"the body has {request.content_length} bytes, at most {MAX_REQUEST_BYTES} are allowed"
        )
    try:
        data = request.stream.read(MAX_REQUEST_BYTES + 1)
    except _BODY_READ_ERRORS as error:
        raise _BadRequest(f"reading the body failed: {type(error).__name__}: {error}") from error
    if len(data) > MAX_REQUEST_BYTES:
        raise _BadRequest(f"the body is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        body = jsontext.loads(data)
    except ValueError as error:
        raise _BadRequest(f"the body is not valid JSON: {error}") from error
    try:
        return parse_review(body)
    except InvalidReviewError as error:
        raise _BadRequest(f"the body is not an AdmissionReview: {error}") from error


def create_app(
    settings: Settings,
    resolve: ResourceNameResolver,
    is_ready: Callable[[], bool] = lambda: True,
) -> Flask:
    """Return the webhook's Flask application.

    ``resolve`` gives the device-plugin resource of the RDMA network (see
    ``numaflow_rdma.webhook.nad``); ``is_ready`` returns whether a valid serving
    certificate is loaded, for ``/readyz``.
    """
    app = Flask(__name__)

    @app.post("/mutate")
    def mutate() -> Any:
        started = time.perf_counter()
        result = ERROR
        try:
            try:
                review = _read_review()
            except _BadRequest as error:
                result = INVALID
                logger.warning(
                    "Rejected an invalid admission request: %s.",
                    error,
                    extra={"remote": request.remote_addr or ""},
                )
                return Response(f"invalid admission request: {error}\n", 400, mimetype="text/plain")

            decision = _review_pod(review, settings, resolve)
            result = decision.outcome
            _log_decision(review, decision)
            rejected = decision.outcome == REJECTED
            return jsonify(
                review_response(
                    review.uid,
                    allowed=not rejected,
                    patch=decision.patch,
                    message=decision.message if rejected else None,
                    code=decision.code if rejected else None,
                    warnings=decision.warnings,
                )
            )
        finally:
            # An exception leaves result at "error"; Flask logs it and responds with HTTP 500.
            ADMISSIONS.labels(result=result).inc()
            DURATION.observe(time.perf_counter() - started)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> Response:
        if is_ready():
            return Response("ok\n", mimetype="text/plain")
        return Response("no valid serving certificate is loaded\n", 503, mimetype="text/plain")

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(_metrics_text(), mimetype=CONTENT_TYPE_LATEST)

    return app
