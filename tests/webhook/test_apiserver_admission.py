"""The webhook behind the real kube-apiserver, registered through a MutatingWebhookConfiguration."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import pytest
import yaml
from webhookpods import env_of, user_container
from webhookserver import RunningWebhook

from numaflow_rdma import certs
from numaflow_rdma.controlplane.plane import ControlPlane
from numaflow_rdma.fixtures import load_pods
from numaflow_rdma.names import (
    ENV_DESTINATIONS,
    ENV_VERTEX,
    INJECTED_ANNOTATION,
    MULTUS_NETWORKS_ANNOTATION,
    MULTUS_RESOURCE_NAME_ANNOTATION,
    PODINFO_VOLUME,
)
from numaflow_rdma.webhook.configuration import WEBHOOK_NAME, webhook_configuration

pytestmark = pytest.mark.controlplane

RESOURCE = "rdma/hca_shared_devices_a"
NAD_CRD = "network-attachment-definitions.k8s.cni.cncf.io"


def register_nad_crd(kube_client: Any) -> None:
    """Create the NetworkAttachmentDefinition CRD once and wait until it is served."""
    from kubernetes import client

    api = client.ApiextensionsV1Api(kube_client)
    manifest = yaml.safe_load(
        (
            resources.files("numaflow_rdma.controlplane")
            / "crds"
            / "network-attachment-definition.yaml"
        ).read_text()
    )
    try:
        api.create_custom_resource_definition(manifest)
    except client.ApiException as error:
        if error.status != 409:
            raise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = api.read_custom_resource_definition(NAD_CRD)
        status = crd.status
        conditions = {c.type: c.status for c in ((status.conditions if status else None) or [])}
        if conditions.get("Established") == "True":
            return
        time.sleep(0.2)
    raise AssertionError(f"the CRD {NAD_CRD} was not established within 30 s")


@pytest.fixture
def rdma_network(kube_client: Any, make_namespace: Callable[..., str]) -> str:
    """Create a NetworkAttachmentDefinition with a resourceName annotation; return namespace/name."""
    from kubernetes import client

    register_nad_crd(kube_client)
    namespace = make_namespace(opted_in=False, prefix="infra")
    client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        "k8s.cni.cncf.io",
        "v1",
        namespace,
        "network-attachment-definitions",
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {
                "name": "rdma-net",
                "annotations": {MULTUS_RESOURCE_NAME_ANNOTATION: RESOURCE},
            },
            "spec": {
                "config": json.dumps({"cniVersion": "0.3.1", "type": "macvlan", "name": "rdma-net"})
            },
        },
    )
    return f"{namespace}/rdma-net"


@pytest.fixture
def registered_webhook(
    control_plane: ControlPlane,
    kube_client: Any,
    rdma_network: str,
    start_webhook: Callable[..., RunningWebhook],
) -> Iterator[RunningWebhook]:
    """Serve the webhook and register it with the API server; unregister at the end."""
    from kubernetes import client

    assert control_plane.apiserver is not None
    webhook = start_webhook(
        ["--network", rdma_network, "--kubeconfig", str(control_plane.apiserver.kubeconfig_path)],
        workers=2,
    )
    name = f"numaflow-rdma-test-{uuid.uuid4().hex[:8]}"
    api: Any = client.AdmissionregistrationV1Api(kube_client)
    api.create_mutating_webhook_configuration(
        webhook_configuration(name, certs.ca_bundle(webhook.ca), url=webhook.url, timeout_seconds=5)
    )
    try:
        yield webhook
    finally:
        api.delete_mutating_webhook_configuration(name)


def pod_in(namespace: str) -> dict[str, Any]:
    """Return the generated pod of the video pipeline's first ``infer`` replica, in ``namespace``."""
    pod = copy.deepcopy(load_pods("video", "sidecar", namespace=namespace)[2])
    pod["metadata"]["name"] = f"video-infer-0-{uuid.uuid4().hex[:5]}"
    return pod


def core_api(kube_client: Any) -> Any:
    """Return a CoreV1Api, untyped: the tests pass pods as dicts and read raw responses."""
    from kubernetes import client

    return client.CoreV1Api(kube_client)


def stored(kube_client: Any, namespace: str, name: str) -> dict[str, Any]:
    response = core_api(kube_client).read_namespaced_pod(name, namespace, _preload_content=False)
    pod: dict[str, Any] = json.loads(response.data)
    return pod


def wait_until_webhook_called(kube_client: Any, namespace: str) -> None:
    """Dry-run a pod creation until the API server has picked up the new configuration."""
    core = core_api(kube_client)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = core.create_namespaced_pod(
            namespace, pod_in(namespace), dry_run="All", _preload_content=False
        )
        if INJECTED_ANNOTATION in (json.loads(answer.data)["metadata"].get("annotations") or {}):
            return
        time.sleep(0.3)
    raise AssertionError("the API server did not call the webhook within 30 s")


def test_vertex_pod_stored_injected(
    kube_client: Any,
    make_namespace: Callable[..., str],
    registered_webhook: RunningWebhook,
    rdma_network: str,
) -> None:

    namespace = make_namespace(opted_in=True, prefix="video")
    wait_until_webhook_called(kube_client, namespace)
    pod = pod_in(namespace)
    core_api(kube_client).create_namespaced_pod(namespace, pod)

    result = stored(kube_client, namespace, pod["metadata"]["name"])
    annotations = result["metadata"]["annotations"]
    assert annotations[MULTUS_NETWORKS_ANNOTATION] == f"{rdma_network}@net1"
    assert json.loads(annotations[INJECTED_ANNOTATION])["resource"] == RESOURCE
    assert (
        annotations["numaflow.numaproj.io/hash"]
        == pod["metadata"]["annotations"]["numaflow.numaproj.io/hash"]
    )
    udf = user_container(result, "udf")
    assert udf["resources"]["limits"][RESOURCE] == "1"
    assert udf["resources"]["requests"][RESOURCE] == "1"
    assert "IPC_LOCK" in udf["securityContext"]["capabilities"]["add"]
    env = env_of(udf)
    assert env[ENV_VERTEX] == f"infer.video.{namespace}.vertexdomain.local"
    assert env[ENV_DESTINATIONS] == f"out=out.video.{namespace}.vertexdomain.local"
    assert PODINFO_VOLUME in [volume["name"] for volume in result["spec"]["volumes"]]


def test_unlabelled_namespace_untouched(
    kube_client: Any, make_namespace: Callable[..., str], registered_webhook: RunningWebhook
) -> None:

    opted_in = make_namespace(opted_in=True, prefix="video")
    wait_until_webhook_called(kube_client, opted_in)
    namespace = make_namespace(opted_in=False, prefix="plain")
    pod = pod_in(namespace)
    core_api(kube_client).create_namespaced_pod(namespace, pod)

    result = stored(kube_client, namespace, pod["metadata"]["name"])
    assert INJECTED_ANNOTATION not in result["metadata"]["annotations"]
    assert MULTUS_NETWORKS_ANNOTATION not in result["metadata"]["annotations"]
    # The API server defaults fields such as fieldRef.apiVersion, so names are compared.
    assert set(env_of(user_container(result, "udf"))) == set(env_of(user_container(pod, "udf")))
    assert "securityContext" not in user_container(result, "udf")
    assert PODINFO_VOLUME not in [volume["name"] for volume in result["spec"]["volumes"]]


def test_stopped_webhook_fails_creation(
    kube_client: Any, make_namespace: Callable[..., str], registered_webhook: RunningWebhook
) -> None:
    from kubernetes import client

    namespace = make_namespace(opted_in=True, prefix="video")
    wait_until_webhook_called(kube_client, namespace)
    registered_webhook.process.stop()

    with pytest.raises(client.ApiException) as raised:
        core_api(kube_client).create_namespaced_pod(namespace, pod_in(namespace))
    message = json.loads(str(raised.value.body))["message"]
    assert WEBHOOK_NAME in message
    assert "failed calling webhook" in message
