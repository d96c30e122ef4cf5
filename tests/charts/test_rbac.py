"""The chart's RBAC, checked by the real API server for each ServiceAccount.

The ServiceAccounts, Roles, ClusterRoles and bindings of one release are
created for real. For every verb on every resource of interest, a
SubjectAccessReview then gets the API server's decision whether each
ServiceAccount may do it. The allowed set must equal the permissions the
component uses, no more and no fewer. The cluster DNS Job's account also runs ``numaflow-rdma coredns
--apply`` with its own token.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from itertools import product
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from chart_helpers import render
from kubernetes import client

from numaflow_rdma import coredns
from numaflow_rdma.controlplane.plane import ControlPlane

pytestmark = pytest.mark.controlplane

RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
OTHER_NAMESPACE = "default"


class Resource(NamedTuple):
    group: str
    resource: str
    name: str = ""


RESOURCES = (
    Resource("", "pods"),
    Resource("", "pods", "video-infer-0"),
    Resource("", "pods/status"),
    Resource("", "pods/exec"),
    Resource("", "namespaces"),
    Resource("", "secrets"),
    Resource("", "configmaps"),
    Resource("", "configmaps", "coredns-custom"),
    Resource("", "configmaps", "coredns"),
    Resource("", "services"),
    Resource("", "services", "zone-dns"),
    Resource("", "serviceaccounts"),
    Resource("", "events"),
    Resource("events.k8s.io", "events"),
    Resource("coordination.k8s.io", "leases"),
    Resource("coordination.k8s.io", "leases", "dnssync-lease"),
    Resource("apps", "deployments"),
    Resource("k8s.cni.cncf.io", "network-attachment-definitions"),
    Resource("k8s.cni.cncf.io", "network-attachment-definitions", "rdma-net"),
    Resource("k8s.cni.cncf.io", "network-attachment-definitions", "other-net"),
    Resource("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    Resource("rbac.authorization.k8s.io", "roles"),
)


class Release(NamedTuple):
    name: str
    namespace: str
    dns_namespace: str
    manifests: list[dict[str, Any]]

    def account(self, component: str) -> str:
        return f"{self.name}-numaflow-rdma-{component}"


@pytest.fixture
def release(
    helm: Path,
    tmp_path: Path,
    kube_client: Any,
    chart_crds: list[str],
    make_namespace: Callable[..., str],
) -> Iterator[Release]:
    """Create the RBAC objects of one release, whose cluster DNS Job writes a test namespace."""
    namespace = make_namespace(opted_in=False, prefix="rbac")
    dns_namespace = make_namespace(opted_in=False, prefix="clusterdns")
    name = f"r{namespace[-8:]}"
    overrides = {
        "clusterDns": {"configure": "custom", "configMap": f"{dns_namespace}/coredns-custom"},
    }
    manifests = render(helm, tmp_path, overrides, release=name, namespace=namespace)
    rbac = [manifest for manifest in manifests if manifest["kind"] in RBAC_KINDS]
    created = _create_all(kube_client, rbac)
    try:
        yield Release(name, namespace, dns_namespace, manifests)
    finally:
        _delete_cluster_scoped(kube_client, created)


def _create_all(kube_client: Any, manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from kubernetes import utils

    created = []
    for manifest in manifests:
        utils.create_from_dict(kube_client, manifest)
        created.append(manifest)
    return created


def _delete_cluster_scoped(kube_client: Any, manifests: list[dict[str, Any]]) -> None:
    rbac = client.RbacAuthorizationV1Api(kube_client)
    for manifest in manifests:
        name = manifest["metadata"]["name"]
        if manifest["kind"] == "ClusterRole":
            rbac.delete_cluster_role(name)
        elif manifest["kind"] == "ClusterRoleBinding":
            rbac.delete_cluster_role_binding(name)


def is_allowed(
    kube_client: Any,
    namespace: str,
    account: str,
    verb: str,
    resource: Resource,
    target_namespace: str,
) -> bool:
    group, _, subresource = resource.resource.partition("/")
    attributes = client.V1ResourceAttributes(
        namespace=target_namespace or None,
        verb=verb,
        group=resource.group,
        resource=group,
        subresource=subresource or None,
        name=resource.name or None,
    )
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{namespace}:{account}",
            groups=[
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ],
            resource_attributes=attributes,
        )
    )
    result = client.AuthorizationV1Api(kube_client).create_subject_access_review(review)
    assert result.status is not None
    return bool(result.status.allowed)


def allowed_matrix(
    kube_client: Any, release: Release, component: str, resources: tuple[Resource, ...] = RESOURCES
) -> set[tuple[str, str, str, str, str]]:
    """Return every (namespace, group, resource, name, verb) the component's account may use."""
    namespaces = (release.namespace, release.dns_namespace, OTHER_NAMESPACE, "")
    allowed = set()
    for target, resource, verb in product(namespaces, resources, VERBS):
        if is_allowed(
            kube_client, release.namespace, release.account(component), verb, resource, target
        ):
            allowed.add((target, resource.group, resource.resource, resource.name, verb))
    return allowed


def everywhere(
    release: Release,
    group: str,
    resource: str,
    verbs: tuple[str, ...],
    names: tuple[str, ...] = ("",),
) -> set[tuple[str, str, str, str, str]]:
    """Return the matrix entries for ``verbs`` on ``resource`` in every namespace checked."""
    namespaces = (release.namespace, release.dns_namespace, OTHER_NAMESPACE, "")
    return {
        (ns, group, resource, name, verb) for ns in namespaces for verb in verbs for name in names
    }


def test_dnssync_permissions_exact(kube_client: Any, release: Release) -> None:
    lease_name = release.account("dnssync")
    resources = (*RESOURCES, Resource("coordination.k8s.io", "leases", lease_name))
    read = ("get", "list", "watch")

    allowed = allowed_matrix(kube_client, release, "dnssync", resources)

    expected = (
        everywhere(release, "", "pods", read, ("", "video-infer-0"))
        | everywhere(release, "", "namespaces", read)
        | everywhere(release, "", "events", ("create",))
        | {(release.namespace, "coordination.k8s.io", "leases", "", "create")}
        | {
            (release.namespace, "coordination.k8s.io", "leases", lease_name, verb)
            for verb in ("get", "update")
        }
    )
    # A name given for a create is ignored by RBAC, so create on any lease name is allowed.
    expected |= {
        (release.namespace, "coordination.k8s.io", "leases", name, "create")
        for name in ("dnssync-lease", lease_name)
    }
    assert allowed == expected


def test_dnssync_cannot_read_secrets(kube_client: Any, release: Release) -> None:
    for namespace in (release.namespace, OTHER_NAMESPACE, ""):
        for verb in ("get", "list", "watch"):
            assert not is_allowed(
                kube_client,
                release.namespace,
                release.account("dnssync"),
                verb,
                Resource("", "secrets"),
                namespace,
            )


def test_webhook_permissions_exact(kube_client: Any, release: Release) -> None:
    allowed = allowed_matrix(kube_client, release, "webhook")

    # The default network is rdma-net in the release namespace.
    assert allowed == {
        (release.namespace, "k8s.cni.cncf.io", "network-attachment-definitions", "rdma-net", "get")
    }


def test_cluster_dns_permissions_exact(kube_client: Any, release: Release) -> None:
    zone_service = release.account("coredns")
    resources = (*RESOURCES, Resource("", "services", zone_service))

    allowed = allowed_matrix(kube_client, release, "cluster-dns", resources)

    target = release.dns_namespace
    expected = {
        (target, "", "configmaps", "coredns-custom", verb) for verb in ("get", "update", "patch")
    }
    expected |= {
        (target, "", "configmaps", name, "create") for name in ("", "coredns-custom", "coredns")
    }
    expected.add((release.namespace, "", "services", zone_service, "get"))
    assert allowed == expected


def test_zone_dns_has_no_permissions(kube_client: Any, release: Release) -> None:
    assert allowed_matrix(kube_client, release, "coredns") == set()


def token_kubeconfig(
    control_plane: ControlPlane, kube_client: Any, namespace: str, account: str, path: Path
) -> Path:
    """Write a kubeconfig that authenticates with a fresh token of the ServiceAccount."""
    assert control_plane.apiserver is not None
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    token = client.CoreV1Api(kube_client).create_namespaced_service_account_token(
        account, namespace, request
    )
    assert token.status is not None
    token_text = token.status.token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": control_plane.apiserver.url,
                    "certificate-authority": str(control_plane.apiserver.ca_path),
                },
            }
        ],
        "users": [{"name": account, "user": {"token": token_text}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": account}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config))
    return path


def test_cluster_dns_job_runs_with_its_token(
    tmp_path: Path, control_plane: ControlPlane, kube_client: Any, release: Release
) -> None:
    core = client.CoreV1Api(kube_client)
    zone_service = next(
        manifest
        for manifest in release.manifests
        if manifest["kind"] == "Service"
        and manifest["metadata"]["name"] == release.account("coredns")
    )
    core.create_namespaced_service(release.namespace, zone_service)
    kubeconfig = token_kubeconfig(
        control_plane,
        kube_client,
        release.namespace,
        release.account("cluster-dns"),
        tmp_path / "kubeconfig",
    )
    job = next(
        m
        for m in release.manifests
        if m["kind"] == "Job" and m["metadata"]["name"].endswith("-apply")
    )
    job_env = {
        item["name"]: item["value"]
        for item in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }

    parser = argparse.ArgumentParser()
    coredns.add_arguments(parser)
    args = parser.parse_args(
        [
            "--apply",
            "--kubeconfig",
            str(kubeconfig),
            "--form",
            job_env["NUMAFLOW_RDMA_COREDNS_FORM"],
            "--cluster-dns-configmap",
            job_env["NUMAFLOW_RDMA_COREDNS_CLUSTER_DNS_CONFIGMAP"],
            "--upstream-service",
            job_env["NUMAFLOW_RDMA_COREDNS_UPSTREAM_SERVICE"],
        ]
    )
    assert coredns.run(args) == 0

    spec = core.read_namespaced_service(release.account("coredns"), release.namespace).spec
    assert spec is not None
    data = core.read_namespaced_config_map("coredns-custom", release.dns_namespace).data or {}
    assert f"forward . {spec.cluster_ip}:53\n" in data["numaflow-rdma.vertexdomain.local.server"]

    args.remove = True
    args.upstream_service = None
    assert coredns.run(args) == 0
    assert "numaflow-rdma.vertexdomain.local.server" not in (
        core.read_namespaced_config_map("coredns-custom", release.dns_namespace).data or {}
    )
