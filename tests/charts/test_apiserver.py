"""The rendered chart against the real kube-apiserver: dry-run creates, and a real helm install.

The API server validates every object as it would in a cluster: schemas of
built-in kinds and CRDs with strict field validation, CEL match conditions,
selectors, RBAC references. No scheduler or kubelet runs, so pods never start.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chart_helpers import (
    CHART,
    COMBINATIONS,
    AdminApi,
    find,
    render,
    run_helm,
    values_file,
)
from kubernetes import client

from numaflow_rdma.controlplane.plane import ControlPlane

pytestmark = pytest.mark.controlplane


def ensure_namespace(kube_client: Any, name: str) -> None:
    try:
        client.CoreV1Api(kube_client).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
        )
    except client.ApiException as error:
        if error.status != 409:
            raise


def dry_run_create(api: AdminApi, manifest: dict[str, Any], namespace: str) -> tuple[int, str, str]:
    """POST ``manifest`` with dryRun=All and strict field validation; return status, body, warnings."""
    url = api.collection_url(manifest, manifest["metadata"].get("namespace", namespace))
    response = api.session.post(
        url, params={"dryRun": "All", "fieldValidation": "Strict"}, json=manifest, timeout=30
    )
    return response.status_code, response.text, response.headers.get("Warning", "")


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_every_manifest_accepted(
    helm: Path,
    tmp_path: Path,
    admin_api: AdminApi,
    chart_crds: list[str],
    kube_client: Any,
    make_namespace: Callable[..., str],
    combination: str,
) -> None:
    namespace = make_namespace(opted_in=False, prefix="chart")
    overrides = COMBINATIONS[combination]
    network_namespace = overrides.get("network", {}).get("namespace")
    if network_namespace:
        ensure_namespace(kube_client, network_namespace)

    manifests = render(helm, tmp_path, overrides, namespace=namespace)

    assert manifests
    for manifest in manifests:
        status, body, warnings = dry_run_create(admin_api, manifest, namespace)
        what = f"{manifest['kind']}/{manifest['metadata']['name']}"
        assert status == 201, f"{what} was rejected: {body}"
        assert not warnings, f"{what} drew warnings: {warnings}"


def test_broken_match_condition_rejected(
    helm: Path, tmp_path: Path, admin_api: AdminApi, make_namespace: Callable[..., str]
) -> None:
    # The dry run checks CEL: the same configuration with an expression that
    # does not compile is rejected, so the test above would catch a typo.
    namespace = make_namespace(opted_in=False, prefix="chart")
    configuration = find(
        render(helm, tmp_path, {}, namespace=namespace), "MutatingWebhookConfiguration"
    )
    configuration["webhooks"][0]["matchConditions"][0]["expression"] = (
        "object.metadata.annotations.trim("
    )

    status, body, _ = dry_run_create(admin_api, configuration, namespace)

    assert status == 422
    assert "matchConditions" in body


def test_misplaced_field_rejected(
    helm: Path,
    tmp_path: Path,
    admin_api: AdminApi,
    chart_crds: list[str],
    make_namespace: Callable[..., str],
) -> None:
    namespace = make_namespace(opted_in=False, prefix="chart")
    certificate = find(render(helm, tmp_path, {}, namespace=namespace), "Certificate")
    certificate["spec"]["dnsName"] = certificate["spec"].pop("dnsNames")

    status, body, _ = dry_run_create(admin_api, certificate, namespace)

    assert status == 400
    assert 'unknown field "spec.dnsName"' in json.loads(body)["message"]


def helm_command(control_plane: ControlPlane, *args: str) -> list[str]:
    assert control_plane.apiserver is not None
    return [*args, "--kubeconfig", str(control_plane.apiserver.kubeconfig_path)]


def test_install_upgrade_uninstall(
    helm: Path,
    tmp_path: Path,
    control_plane: ControlPlane,
    kube_client: Any,
    chart_crds: list[str],
    make_namespace: Callable[..., str],
) -> None:
    namespace = make_namespace(opted_in=False, prefix="release")
    values = str(values_file(tmp_path, COMBINATIONS["self-signed"]))
    core = client.CoreV1Api(kube_client)
    admission = client.AdmissionregistrationV1Api(kube_client)
    release = f"nr-{namespace[-8:]}"
    secret_name = f"{release}-numaflow-rdma-webhook-tls"

    installed = run_helm(
        helm,
        *helm_command(
            control_plane, "install", release, str(CHART), "--namespace", namespace, "-f", values
        ),
    )
    assert installed.returncode == 0, installed.stderr
    notes = installed.stdout.split("NOTES:", 1)[1]
    assert "numaflow-rdma coredns --form forward-kubeadm --zone vertexdomain.local" in notes
    assert "kubectl label namespace <namespace> numaflow-rdma/inject=enabled" in notes

    ca_before = core.read_namespaced_secret(secret_name, namespace).data["ca.crt"]
    configuration = admission.read_mutating_webhook_configuration(
        f"{release}-numaflow-rdma-webhook"
    )
    assert configuration.webhooks[0].client_config.ca_bundle == ca_before

    # An upgrade finds the Secret through lookup and keeps the CA the API server trusts.
    upgraded = run_helm(
        helm,
        *helm_command(
            control_plane,
            "upgrade",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "-f",
            values,
            "--set",
            "webhook.timeoutSeconds=5",
        ),
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert core.read_namespaced_secret(secret_name, namespace).data["ca.crt"] == ca_before
    configuration = admission.read_mutating_webhook_configuration(
        f"{release}-numaflow-rdma-webhook"
    )
    assert configuration.webhooks[0].timeout_seconds == 5
    assert base64.b64decode(configuration.webhooks[0].client_config.ca_bundle).startswith(
        b"-----BEGIN CERTIFICATE-----"
    )

    uninstalled = run_helm(
        helm, *helm_command(control_plane, "uninstall", release, "--namespace", namespace)
    )
    assert uninstalled.returncode == 0, uninstalled.stderr
    with pytest.raises(client.ApiException) as missing:
        admission.read_mutating_webhook_configuration(f"{release}-numaflow-rdma-webhook")
    assert missing.value.status == 404


def test_install_records_release_values(
    helm: Path,
    tmp_path: Path,
    control_plane: ControlPlane,
    chart_crds: list[str],
    make_namespace: Callable[..., str],
) -> None:
    namespace = make_namespace(opted_in=False, prefix="release")
    release = f"nr-{namespace[-8:]}"
    installed = run_helm(
        helm,
        *helm_command(
            control_plane,
            "install",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--set",
            "zone=frames.test",
        ),
    )
    assert installed.returncode == 0, installed.stderr
    try:
        status = run_helm(
            helm,
            *helm_command(control_plane, "status", release, "--namespace", namespace, "-o", "json"),
        )
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["info"]["status"] == "deployed"
    finally:
        run_helm(helm, *helm_command(control_plane, "uninstall", release, "--namespace", namespace))
