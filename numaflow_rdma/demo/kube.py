"""The Kubernetes API calls of the demo, as JSON dicts through the real API server.

The demo plays the scheduler, the kubelet and Multus, so besides creating
objects it binds pods to a node and writes their status through the
``pods/status`` subresource, as those components do.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

import yaml

from numaflow_rdma import names
from numaflow_rdma.dnssync.kube import KubeApiError, KubeClient

NAD_CRD = "network-attachment-definitions.k8s.cni.cncf.io"
MERGE_PATCH = "application/merge-patch+json"


class DemoKube:
    """The API requests the demo makes."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def create_namespace(self, name: str, labels: dict[str, str]) -> dict[str, Any]:
        """Create a namespace with ``labels``."""
        return self.client.request(
            "POST", "/api/v1/namespaces", body={"metadata": {"name": name, "labels": labels}}
        )

    def label_namespace(self, name: str, labels: dict[str, str]) -> dict[str, Any]:
        """Add ``labels`` to a namespace, as ``kubectl label`` does."""
        return self.client.request(
            "PATCH",
            f"/api/v1/namespaces/{name}",
            body={"metadata": {"labels": labels}},
            content_type=MERGE_PATCH,
        )

    def register_nad_crd(self, timeout: float = 30.0) -> None:
        """Create the NetworkAttachmentDefinition CRD, as Multus installs it, and wait until it is served."""
        manifest = yaml.safe_load(
            (
                resources.files("numaflow_rdma.controlplane")
                / "crds"
                / "network-attachment-definition.yaml"
            ).read_text()
        )
        try:
            self.client.request(
                "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=manifest
            )
        except KubeApiError as error:
            if error.status != 409:
                raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            crd = self.client.request(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{NAD_CRD}"
            )
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                return
            time.sleep(0.2)
        raise TimeoutError(f"the CRD {NAD_CRD} was not established within {timeout:.0f} s")

    def create_nad(self, namespace: str, name: str, resource: str, cni_config: dict[str, Any]) -> None:
        """Create a NetworkAttachmentDefinition whose pods get device-plugin ``resource``."""
        self.client.request(
            "POST",
            f"/apis/k8s.cni.cncf.io/v1/namespaces/{namespace}/network-attachment-definitions",
            body={
                "apiVersion": "k8s.cni.cncf.io/v1",
                "kind": "NetworkAttachmentDefinition",
                "metadata": {
                    "name": name,
                    "annotations": {names.MULTUS_RESOURCE_NAME_ANNOTATION: resource},
                },
                "spec": {"config": json.dumps(cni_config)},
            },
        )

    def create_pod(self, pod: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Create ``pod`` in its namespace and return the object the API server stored."""
        namespace = pod["metadata"]["namespace"]
        return self.client.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            query={"dryRun": "All"} if dry_run else None,
            body=pod,
        )

    def read_pod(self, namespace: str, name: str) -> dict[str, Any]:
        """Return the stored pod."""
        return self.client.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")

    def list_pods(self, namespace: str) -> list[dict[str, Any]]:
        """Return every pod of the namespace."""
        body = self.client.request("GET", f"/api/v1/namespaces/{namespace}/pods")
        return list(body.get("items") or [])

    def bind_pod(self, namespace: str, name: str, node: str) -> None:
        """Bind a pod to ``node`` through the binding subresource, as the scheduler does."""
        self.client.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods/{name}/binding",
            body={
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            },
        )

    def patch_pod_status(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge ``patch`` into the pod through the status subresource; return the stored pod."""
        return self.client.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            body=patch,
            content_type=MERGE_PATCH,
        )

    def delete_pod(
        self, namespace: str, name: str, grace_period: int, uid: str | None = None
    ) -> dict[str, Any]:
        """Delete a pod with ``grace_period`` seconds; ``uid`` makes sure it is still the same pod."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": grace_period,
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        return self.client.request(
            "DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body=body
        )

    def pod_exists(self, namespace: str, name: str) -> bool:
        """Tell whether the pod is still stored."""
        try:
            self.read_pod(namespace, name)
        except KubeApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    def create_mutating_webhook_configuration(self, configuration: dict[str, Any]) -> None:
        """Register a MutatingWebhookConfiguration."""
        self.client.request(
            "POST",
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            body=configuration,
        )
