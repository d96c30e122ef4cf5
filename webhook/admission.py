"""Read AdmissionReview requests and write AdmissionReview responses (admission.k8s.io/v1).

The API server POSTs an AdmissionReview with a ``request`` and expects the
same ``apiVersion`` and ``kind`` back, with a ``response`` that copies the
request's ``uid``. A mutating webhook's patch goes in ``response.patch`` as
base64 of the JSON Patch text, with ``patchType: JSONPatch``. Every response of
the webhook is built by ``review_response``, so none can miss a field.

A body that is not an AdmissionReview gets no review back: the HTTP layer
answers 400, and the API server applies the webhook's failure policy.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from numaflow_rdma.webhook.shape import REVIEW_REQUEST, ShapeError, check_shape

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"

# The API server truncates warnings longer than 256 characters; they are cut here first.
MAX_WARNING_LENGTH = 256


class InvalidReviewError(ValueError):
    """A request body that is not an AdmissionReview this webhook can process."""


@dataclass(frozen=True)
class AdmissionRequest:
    """The fields of an AdmissionReview's ``request`` that the webhook uses."""

    uid: str
    operation: str
    namespace: str
    kind: str
    """The object's kind with its group: ``Pod`` for core pods, ``apps/Deployment`` otherwise."""
    sub_resource: str
    object: Mapping[str, Any]
    dry_run: bool

    @property
    def pod_name(self) -> str:
        """The pod's name, or its ``generateName`` prefix when the API server has not named it yet."""
        metadata = self.object.get("metadata") or {}
        return str(metadata.get("name") or metadata.get("generateName") or "")


def parse_review(body: Any) -> AdmissionRequest:
    """Return the request of a decoded AdmissionReview body; raise InvalidReviewError."""
    if not isinstance(body, dict):
        raise InvalidReviewError("the body is not a JSON object")
    if body.get("apiVersion") != API_VERSION or body.get("kind") != KIND:
        raise InvalidReviewError(
            f"expected apiVersion {API_VERSION} and kind {KIND}, "
            f"got {body.get('apiVersion')!r} and {body.get('kind')!r}"
        )
    request = body.get("request")
    if not isinstance(request, dict):
        raise InvalidReviewError("the AdmissionReview has no request")
    try:
        check_shape(request, REVIEW_REQUEST, "request")
    except ShapeError as error:
        raise InvalidReviewError(str(error)) from error
    uid = request.get("uid")
    if not uid:
        raise InvalidReviewError("the AdmissionReview request has no uid")

    kind = request.get("kind") or {}
    group = kind.get("group") or ""
    obj = request.get("object") or {}
    metadata = obj.get("metadata") or {}
    # Pods that controllers create can arrive without metadata.namespace; the
    # request's namespace is set for every namespaced object.
    namespace = request.get("namespace") or metadata.get("namespace") or ""
    kind_name = kind.get("kind") or ""
    return AdmissionRequest(
        uid=uid,
        operation=request.get("operation") or "",
        namespace=namespace,
        kind=f"{group}/{kind_name}" if group else kind_name,
        sub_resource=request.get("subResource") or "",
        object=obj,
        dry_run=bool(request.get("dryRun")),
    )


def _short_warnings(warnings: Sequence[str]) -> list[str]:
    return [
        warning if len(warning) <= MAX_WARNING_LENGTH else warning[: MAX_WARNING_LENGTH - 3] + "..."
        for warning in warnings
    ]


def review_response(
    uid: str,
    *,
    allowed: bool,
    patch: Sequence[Mapping[str, Any]] = (),
    message: str | None = None,
    code: int | None = None,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """Return a whole AdmissionReview response; ``patch`` is a list of JSON Patch operations."""
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if patch:
        text = json.dumps(list(patch), separators=(",", ":")).encode("utf-8")
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(text).decode("ascii")
    if message is not None or code is not None:
        status: dict[str, Any] = {}
        if code is not None:
            status["code"] = code
        if message is not None:
            status["message"] = message
        response["status"] = status
    if warnings:
        response["warnings"] = _short_warnings(warnings)
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}
