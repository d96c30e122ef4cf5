"""Security checks: no access without TLS 1.2 or later, the shared secret, or an RBAC grant.

- The real webhook server refuses plaintext HTTP and every TLS version
  below 1.2, and accepts TLS 1.2 and 1.3.
- A transport receiver with a shared secret rejects senders without it or
  with a wrong one, and its good sender carries on.
- Every ServiceAccount of the chart, as the real API server authorizes it:
  no read of Secrets anywhere, no write beyond what the component owns
  (SubjectAccessReview over a matrix of verbs and resources), and the same
  denials for real requests made with each account's own token.
"""

from __future__ import annotations

import collections
import contextlib
import json
import socket
import ssl
import time
from collections.abc import Iterator
from itertools import product
from typing import Any, NamedTuple

import pytest
import requests
from chart_helpers import render
from netnamespaces import BACKENDS, run_isolated
from reviewfuzz import WEBHOOK_ARGUMENTS
from runsize import record_figures
from test_rbac import RBAC_KINDS, Resource, _create_all, _delete_cluster_scoped, is_allowed
from webhookpods import admission_review, vertex_pod
from webhookserver import RunningWebhook, start_webhook_server

from numaflow_rdma.controlplane import binaries
from numaflow_rdma.controlplane.plane import ControlPlane
from numaflow_rdma.controlplane.process import LOOPBACK

SUITE = "security"


# The webhook's TLS.


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWebhook]:
    running = start_webhook_server(
        tmp_path_factory.mktemp("secure-webhook"), WEBHOOK_ARGUMENTS, workers=1
    )
    try:
        yield running
    finally:
        running.process.stop()


def _port(webhook: RunningWebhook) -> int:
    return int(webhook.url.rsplit(":", 1)[1])


def _read_until_closed(sock: socket.socket, limit: float = 10.0) -> bytes:
    sock.settimeout(limit)
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("path", ["/mutate", "/healthz"])
def test_webhook_refuses_plaintext_http(webhook: RunningWebhook, path: str) -> None:
    body = json.dumps(admission_review(vertex_pod())).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {LOOPBACK}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    log_before = webhook.process.log_path.read_text(errors="replace")

    with socket.create_connection((LOOPBACK, _port(webhook)), timeout=10) as plain:
        plain.sendall(request)
        reply = _read_until_closed(plain)

    assert not reply.startswith(b"HTTP/"), reply[:200]
    log = webhook.process.log_path.read_text(errors="replace")[len(log_before) :]
    assert "Admitted" not in log


def _handshake(webhook: RunningWebhook, version: ssl.TLSVersion) -> str:
    """Return the version a client limited to ``version`` negotiates; raise ssl.SSLError if none."""
    context = webhook.ssl_context()
    # Every cipher the local OpenSSL has, so that only the version can fail.
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.minimum_version = version
    context.maximum_version = version
    with (
        socket.create_connection((LOOPBACK, _port(webhook)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=LOOPBACK) as sock,
    ):
        return str(sock.version())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_webhook_refuses_tls_below_1_2(webhook: RunningWebhook, version: ssl.TLSVersion) -> None:
    try:
        negotiated = _handshake(webhook, version)
    except ssl.SSLError as error:
        if "NO_PROTOCOLS_AVAILABLE" in str(error) or "NO_CIPHERS_AVAILABLE" in str(error):
            pytest.skip(f"the local OpenSSL cannot offer {version.name}: {error}")
        # The server's alert: it does not speak the version the client offered.
        assert "PROTOCOL_VERSION" in str(error) or "UNSUPPORTED_PROTOCOL" in str(error), error
        return
    raise AssertionError(f"a {version.name} handshake succeeded as {negotiated}")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_webhook_accepts_tls_1_2_and_1_3(webhook: RunningWebhook, version: ssl.TLSVersion) -> None:
    assert (
        _handshake(webhook, version) == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
    )


# The transport's shared secret.


def _check_secret(backend: str, attempts: int) -> dict[str, int]:
    from numaflow_rdma.transport import DropReason, Receiver, Sender

    identity = {"namespace": "ns", "pipeline": "video", "backend": backend}
    quick = {"policy": "drop_newest", "connect_timeout": 1.0, "handshake_timeout": 2.0}
    secret = "pipeline-secret"
    with Receiver("127.0.0.1", 0, secret=secret, **identity) as receiver:
        peer = f"127.0.0.1:{receiver.port}"
        with Sender(peer, secret=secret, **identity) as good:
            assert good.send(b"first", timeout=5).sent
            assert bytes(receiver.receive(timeout=10).data) == b"first"  # type: ignore[union-attr]

            # Senders without the secret, with guesses of it, and with it in another case.
            guesses = [None, "", "guess", secret.upper(), secret + " ", secret[:-1]]
            for attempt in range(attempts):
                guess = guesses[attempt % len(guesses)]
                with Sender(peer, secret=guess, **quick, **identity) as stranger:
                    result = stranger.send(b"intruder", timeout=3)
                    assert result.reason is DropReason.NO_PEER, result

            deadline = time.monotonic() + 10
            rejected: dict[str, int] = {}
            while time.monotonic() < deadline:
                rejected = receiver.metrics.snapshot()["connections_rejected"]
                if rejected.get("secret", 0) >= attempts:
                    break
                time.sleep(0.05)
            # A sender may connect more than once before it gives up; every try is rejected.
            assert set(rejected) == {"secret"}
            assert rejected["secret"] >= attempts

            assert good.send(b"after", timeout=5).sent
            frame = receiver.receive(timeout=10)
            assert frame is not None
            assert bytes(frame.data) == b"after"
            # Nothing a stranger sent was delivered.
            assert receiver.receive(timeout=0.5) is None
            assert receiver.connection_count == 1
    return rejected


# BACKENDS marks each case netns and skips it without root.
@pytest.mark.parametrize("backend", BACKENDS)
def test_transport_rejects_peers_without_secret(backend: str) -> None:
    attempts = 12
    rejected = run_isolated(_check_secret, backend, attempts, timeout=240)
    record_figures(
        SUITE,
        f"transport_secret_{backend}",
        {"senders_without_secret": attempts, "connections_rejected": rejected["secret"]},
    )


# The chart's ServiceAccounts, as the real API server authorizes them.

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
READ_VERBS = ("get", "list", "watch")

CHECKED_RESOURCES = (
    Resource("", "secrets"),
    Resource("", "pods"),
    Resource("", "pods/exec"),
    Resource("", "pods/eviction"),
    Resource("", "pods/status"),
    Resource("", "namespaces"),
    Resource("", "nodes"),
    Resource("", "configmaps"),
    Resource("", "configmaps", "coredns"),
    Resource("", "configmaps", "coredns-custom"),
    Resource("", "services"),
    Resource("", "serviceaccounts"),
    Resource("", "serviceaccounts/token"),
    Resource("", "events"),
    Resource("coordination.k8s.io", "leases"),
    Resource("coordination.k8s.io", "leases", "kube-scheduler"),
    Resource("apps", "deployments"),
    Resource("apps", "statefulsets"),
    Resource("k8s.cni.cncf.io", "network-attachment-definitions"),
    Resource("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    Resource("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    Resource("apiextensions.k8s.io", "customresourcedefinitions"),
    Resource("rbac.authorization.k8s.io", "roles"),
    Resource("rbac.authorization.k8s.io", "rolebindings"),
    Resource("rbac.authorization.k8s.io", "clusterroles"),
    Resource("rbac.authorization.k8s.io", "clusterrolebindings"),
    Resource("cert-manager.io", "certificates"),
)


class ChartRelease(NamedTuple):
    name: str
    namespace: str
    dns_namespace: str
    accounts: list[str]

    def account(self, component: str) -> str:
        return f"{self.name}-numaflow-rdma-{component}"


@pytest.fixture(scope="module")
def chart_release(
    control_plane: ControlPlane, kube_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChartRelease]:
    """Create the RBAC objects of one default release, with a namespace for its cluster DNS Job."""
    from kubernetes import client

    core = client.CoreV1Api(kube_client)
    suffix = str(int(time.time() * 1000) % 10**8)
    namespace, dns_namespace = f"sec-{suffix}", f"sec-dns-{suffix}"
    for name in (namespace, dns_namespace):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    release = f"s{suffix}"
    overrides = {
        "clusterDns": {"configure": "custom", "configMap": f"{dns_namespace}/coredns-custom"}
    }
    manifests = render(
        binaries.ensure("helm"),
        tmp_path_factory.mktemp("security-chart"),
        overrides,
        release=release,
        namespace=namespace,
    )
    created = _create_all(
        kube_client, [manifest for manifest in manifests if manifest["kind"] in RBAC_KINDS]
    )
    accounts = sorted(
        manifest["metadata"]["name"]
        for manifest in manifests
        if manifest["kind"] == "ServiceAccount"
    )
    # Pods that name no ServiceAccount run as the namespace's default one.
    for manifest in manifests:
        spec = (manifest.get("spec") or {}).get("template", {}).get("spec")
        if spec is not None and not spec.get("serviceAccountName") and "default" not in accounts:
            accounts.append("default")
    # No controller manager runs here to create the default ServiceAccount.
    if "default" in accounts:
        with contextlib.suppress(client.ApiException):
            core.create_namespaced_service_account(
                namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
            )
    # A Secret to read, if any account could.
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="canary"), string_data={"k": "v"}),
    )
    try:
        yield ChartRelease(release, namespace, dns_namespace, accounts)
    finally:
        _delete_cluster_scoped(kube_client, created)
        for name in (namespace, dns_namespace):
            with contextlib.suppress(client.ApiException):
                core.delete_namespace(name)


def owned_writes(release: ChartRelease, account: str) -> set[tuple[str, str, str, str, str]]:
    """Return the writes ``account`` needs: (namespace, group, resource, name, verb).

    dnssync creates Events in every namespace and creates and renews its own
    Lease. The cluster DNS Job creates and updates the forwarding ConfigMap
    of cluster DNS. No other account writes anything. RBAC ignores the name
    of a create, so a create is allowed under every name.
    """
    namespaces = (release.namespace, release.dns_namespace, "default", "")
    if account == release.account("dnssync"):
        lease = release.account("dnssync")
        owned = {(ns, "", "events", "", "create") for ns in namespaces}
        owned |= {
            (release.namespace, "coordination.k8s.io", "leases", name, "create")
            for name in ("", "kube-scheduler", lease)
        }
        owned.add((release.namespace, "coordination.k8s.io", "leases", lease, "update"))
        return owned
    if account == release.account("cluster-dns"):
        owned = {
            (release.dns_namespace, "", "configmaps", name, "create")
            for name in ("", "coredns", "coredns-custom")
        }
        owned |= {
            (release.dns_namespace, "", "configmaps", "coredns-custom", verb)
            for verb in ("update", "patch")
        }
        return owned
    return set()


@pytest.mark.controlplane
def test_service_accounts_cannot_read_secrets_or_write_others(
    kube_client: Any, chart_release: ChartRelease
) -> None:
    namespaces = (chart_release.namespace, chart_release.dns_namespace, "default", "")
    checks = 0
    for account in chart_release.accounts:
        extra: tuple[Resource, ...] = ()
        if account == chart_release.account("dnssync"):
            extra = (Resource("coordination.k8s.io", "leases", account),)
        allowed_writes = set()
        for namespace, resource, verb in product(
            namespaces, (*CHECKED_RESOURCES, *extra), READ_VERBS + WRITE_VERBS
        ):
            if resource.resource != "secrets" and verb in READ_VERBS:
                continue
            checks += 1
            allowed = is_allowed(
                kube_client, chart_release.namespace, account, verb, resource, namespace
            )
            if resource.resource == "secrets" and verb in READ_VERBS:
                assert not allowed, f"{account} may {verb} secrets in {namespace or 'all'}"
            elif allowed:
                allowed_writes.add(
                    (namespace, resource.group, resource.resource, resource.name, verb)
                )
        extra_writes = allowed_writes - owned_writes(chart_release, account)
        assert not extra_writes, f"{account} may write what it does not own: {extra_writes}"
    record_figures(
        SUITE,
        "rbac_reviews",
        {"accounts": len(chart_release.accounts), "subject_access_reviews": checks},
    )


def _token(kube_client: Any, namespace: str, account: str) -> str:
    from kubernetes import client

    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    token = client.CoreV1Api(kube_client).create_namespaced_service_account_token(
        account, namespace, request
    )
    assert token.status is not None
    return str(token.status.token)


def forbidden_requests(release: ChartRelease) -> list[tuple[str, str, Any]]:
    """Return requests no ServiceAccount of the chart may make: method, path and body."""
    ns, dns_ns = release.namespace, release.dns_namespace
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "escalate"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "admin",
        },
        "subjects": [{"kind": "Group", "name": "system:serviceaccounts"}],
    }
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "x"}}
    return [
        ("GET", f"/api/v1/namespaces/{ns}/secrets/canary", None),
        ("GET", f"/api/v1/namespaces/{ns}/secrets", None),
        ("GET", "/api/v1/secrets", None),
        ("POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "planted"}}),
        ("POST", f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "planted"}}),
        ("DELETE", f"/api/v1/namespaces/{dns_ns}", None),
        ("PATCH", f"/api/v1/namespaces/{dns_ns}/configmaps/coredns", {"data": {"x": "y"}}),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/x", lease),
        ("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", binding),
        ("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/default/token", {"spec": {}}),
        ("DELETE", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/x", None),
    ]


@pytest.mark.controlplane
def test_service_account_tokens_are_denied(
    control_plane: ControlPlane, kube_client: Any, chart_release: ChartRelease
) -> None:
    apiserver = control_plane.apiserver
    assert apiserver is not None
    statuses: collections.Counter[int] = collections.Counter()
    with requests.Session() as session:
        session.trust_env = False
        session.verify = str(apiserver.ca_path)
        for account in chart_release.accounts:
            token = _token(kube_client, chart_release.namespace, account)
            headers = {"Authorization": f"Bearer {token}"}
            # The token is valid: the API server identifies the account.
            review = session.post(
                f"{apiserver.url}/apis/authentication.k8s.io/v1/selfsubjectreviews",
                json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                headers=headers,
                timeout=10,
            )
            assert review.status_code == 201, review.text
            username = review.json()["status"]["userInfo"]["username"]
            assert username == f"system:serviceaccount:{chart_release.namespace}:{account}"

            for method, path, body in forbidden_requests(chart_release):
                response = session.request(
                    method,
                    f"{apiserver.url}{path}",
                    json=body,
                    headers={**headers, "Content-Type": "application/merge-patch+json"}
                    if method == "PATCH"
                    else headers,
                    timeout=10,
                )
                statuses[response.status_code] += 1
                assert response.status_code == 403, f"{account}: {method} {path}: {response.text}"

            impersonating = session.get(
                f"{apiserver.url}/api/v1/namespaces",
                headers={**headers, "Impersonate-User": "admin"},
                timeout=10,
            )
            statuses[impersonating.status_code] += 1
            assert impersonating.status_code == 403, impersonating.text
    record_figures(
        SUITE,
        "rbac_tokens",
        {"accounts": len(chart_release.accounts), "requests_denied": statuses[403]},
    )
