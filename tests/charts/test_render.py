"""The chart checked with the real Helm: lint, template, and the content of the manifests."""

from __future__ import annotations

import argparse
import base64
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from chart_helpers import (
    CHART,
    COMBINATIONS,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    chart_defaults,
    container_env,
    find,
    merge_values,
    pod_specs,
    render,
    run_helm,
    template,
    values_file,
)

from numaflow_rdma import corefile, names
from numaflow_rdma.config import env_name
from numaflow_rdma.controlplane import binaries


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_lint_passes(helm: Path, tmp_path: Path, combination: str) -> None:
    result = run_helm(
        helm,
        "lint",
        str(CHART),
        "--strict",
        "--kube-version",
        KUBE_VERSION,
        "-f",
        str(values_file(tmp_path, COMBINATIONS[combination])),
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_template_renders(helm: Path, tmp_path: Path, combination: str) -> None:
    manifests = render(helm, tmp_path, COMBINATIONS[combination])
    kinds = {manifest["kind"] for manifest in manifests}
    assert {"Deployment", "Service", "MutatingWebhookConfiguration", "ConfigMap"} <= kinds
    for manifest in manifests:
        assert manifest["metadata"]["name"], manifest


def expected_zone_settings(
    manifests: list[dict[str, Any]], values: dict[str, Any]
) -> corefile.ZoneServerSettings:
    """Build the generator's settings from the values, taking etcd endpoints from dnssync's env."""
    dnssync = find(manifests, "Deployment", "-dnssync")["spec"]["template"]["spec"]["containers"][0]
    endpoints = container_env(dnssync)["NUMAFLOW_RDMA_DNSSYNC_ETCD_ENDPOINTS"].split(",")
    external = values["etcd"]["external"]
    tls_dir = "/etc/numaflow-rdma/etcd-tls"
    mounted = not values["etcd"]["enabled"] and external["tls"]["enabled"]
    client_certificate = mounted and external["tls"]["clientCertificate"]
    username = external["auth"]["username"] if not values["etcd"]["enabled"] else ""
    dns = values["coreDns"]
    return corefile.ZoneServerSettings(
        etcd=corefile.EtcdSettings(
            endpoints=tuple(endpoints),
            prefix=values["etcd"]["prefix"],
            ca_file=f"{tls_dir}/ca.crt" if mounted else None,
            cert_file=f"{tls_dir}/tls.crt" if client_certificate else None,
            key_file=f"{tls_dir}/tls.key" if client_certificate else None,
            username=username or None,
        ),
        zone=values["zone"],
        listen=corefile.ListenSettings(port=dns["containerPort"]),
        cache=corefile.CacheSettings(
            success_ttl=dns["cache"]["ttl"],
            denial_ttl=dns["cache"]["denialTTL"],
            serve_stale=dns["cache"]["serveStale"],
        ),
        health_port=dns["healthPort"],
        ready_port=dns["readyPort"],
        metrics_port=dns["metricsPort"],
        lameduck=dns["lameduck"],
        log_queries=dns["logQueries"],
        cluster_domain=values["clusterDomain"],
    )


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_corefile_matches_generator(helm: Path, tmp_path: Path, combination: str) -> None:
    values = merge_values(chart_defaults(), COMBINATIONS[combination])
    manifests = render(helm, tmp_path, COMBINATIONS[combination])

    rendered = find(manifests, "ConfigMap", "-coredns")["data"]["Corefile"]

    assert rendered == corefile.zone_server_block(expected_zone_settings(manifests, values))


def test_default_etcd_endpoint_is_member_address(helm: Path, tmp_path: Path) -> None:
    manifests = render(helm, tmp_path, {})
    dnssync = find(manifests, "Deployment", "-dnssync")["spec"]["template"]["spec"]["containers"][0]
    assert container_env(dnssync)["NUMAFLOW_RDMA_DNSSYNC_ETCD_ENDPOINTS"] == (
        f"http://{RELEASE}-numaflow-rdma-etcd-0.{RELEASE}-numaflow-rdma-etcd-peers.{NAMESPACE}.svc:2379"
    )


def test_webhook_configuration_defaults(helm: Path, tmp_path: Path) -> None:
    manifests = render(helm, tmp_path, {})
    configuration = find(manifests, "MutatingWebhookConfiguration")
    [webhook] = configuration["webhooks"]

    assert webhook["failurePolicy"] == "Fail"
    assert webhook["sideEffects"] == "None"
    assert webhook["reinvocationPolicy"] == "IfNeeded"
    assert webhook["timeoutSeconds"] == 10
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert webhook["namespaceSelector"]["matchLabels"] == {
        names.INJECT_LABEL: names.INJECT_LABEL_ENABLED
    }
    assert webhook["objectSelector"]["matchLabels"] == dict(names.VERTEX_POD_LABELS)
    assert webhook["clientConfig"]["service"] == {
        "name": f"{RELEASE}-numaflow-rdma-webhook",
        "namespace": NAMESPACE,
        "path": "/mutate",
        "port": 443,
    }


def test_webhook_matches_webhook_package(helm: Path, tmp_path: Path) -> None:
    configuration_module = pytest.importorskip("numaflow_rdma.webhook.configuration")
    manifests = render(helm, tmp_path, COMBINATIONS["self-signed"])
    [rendered] = find(manifests, "MutatingWebhookConfiguration")["webhooks"]

    [expected] = configuration_module.webhook_configuration(
        "unused",
        rendered["clientConfig"]["caBundle"],
        service=(NAMESPACE, f"{RELEASE}-numaflow-rdma-webhook", 443),
    )["webhooks"]

    assert rendered == expected


def test_cert_manager_injects_ca(helm: Path, tmp_path: Path) -> None:
    manifests = render(helm, tmp_path, {})
    configuration = find(manifests, "MutatingWebhookConfiguration")
    certificate = find(manifests, "Certificate")
    issuer = find(manifests, "Issuer")

    annotation = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == f"{NAMESPACE}/{certificate['metadata']['name']}"
    assert "caBundle" not in configuration["webhooks"][0]["clientConfig"]
    assert f"{RELEASE}-numaflow-rdma-webhook.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"]["name"] == issuer["metadata"]["name"]
    assert issuer["spec"] == {"selfSigned": {}}


def test_cert_manager_uses_given_issuer(helm: Path, tmp_path: Path) -> None:
    manifests = render(helm, tmp_path, COMBINATIONS["cert-manager-cluster-issuer"])
    assert not [manifest for manifest in manifests if manifest["kind"] == "Issuer"]
    assert find(manifests, "Certificate")["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }


def test_generated_certificate_serves_webhook_service(helm: Path, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    manifests = render(helm, tmp_path, COMBINATIONS["self-signed"])
    secret = find(manifests, "Secret", "-webhook-tls")
    configuration = find(manifests, "MutatingWebhookConfiguration")

    ca_pem = base64.b64decode(secret["data"]["ca.crt"])
    certificate = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    ca = x509.load_pem_x509_certificate(ca_pem)
    assert configuration["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    assert "cert-manager.io/inject-ca-from" not in configuration["metadata"].get("annotations", {})
    names_in_certificate = certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName)
    assert f"{RELEASE}-numaflow-rdma-webhook.{NAMESPACE}.svc" in names_in_certificate
    public_key = ca.public_key()
    assert isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey))
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(
            certificate.signature,
            certificate.tbs_certificate_bytes,
            padding.PKCS1v15(),
            certificate.signature_hash_algorithm,  # type: ignore[arg-type]
        )
    else:
        public_key.verify(
            certificate.signature,
            certificate.tbs_certificate_bytes,
            ec.ECDSA(certificate.signature_hash_algorithm),  # type: ignore[arg-type]
        )


def test_provided_certificate_mounts_secret(helm: Path, tmp_path: Path) -> None:
    manifests = render(helm, tmp_path, COMBINATIONS["provided-certificate"])
    configuration = find(manifests, "MutatingWebhookConfiguration")
    deployment = find(manifests, "Deployment", "-webhook")

    volumes = {
        volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["tls"]["secret"]["secretName"] == "webhook-serving"
    assert configuration["webhooks"][0]["clientConfig"]["caBundle"] == "Q0EgYnVuZGxl"
    assert not [manifest for manifest in manifests if manifest["kind"] in ("Secret", "Certificate")]


def test_webhook_deployment_is_highly_available(helm: Path, tmp_path: Path) -> None:
    manifests = render(helm, tmp_path, {})
    deployment = find(manifests, "Deployment", "-webhook")
    budget = find(manifests, "PodDisruptionBudget", "-webhook")
    spec = deployment["spec"]["template"]["spec"]

    assert deployment["spec"]["replicas"] == 2
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    [spread] = spec["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"] == deployment["spec"]["selector"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("component", ["-webhook", "-dnssync", "-coredns"])
def test_single_replica_has_no_budget(helm: Path, tmp_path: Path, component: str) -> None:
    manifests = render(helm, tmp_path, COMBINATIONS["kubeadm-single-replicas"])
    assert find(manifests, "Deployment", component)["spec"]["replicas"] == 1
    budgets = [
        m
        for m in manifests
        if m["kind"] == "PodDisruptionBudget" and m["metadata"]["name"].endswith(component)
    ]
    assert budgets == []


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_every_container_is_locked_down(helm: Path, tmp_path: Path, combination: str) -> None:
    for name, spec in pod_specs(render(helm, tmp_path, COMBINATIONS[combination])):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec.get("enableServiceLinks") is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_every_server_has_probes(helm: Path, tmp_path: Path, combination: str) -> None:
    for name, spec in pod_specs(render(helm, tmp_path, COMBINATIONS[combination])):
        if name.startswith("Job/"):
            continue
        for container in spec["containers"]:
            assert "livenessProbe" in container, name
            assert "readinessProbe" in container, name


def test_pods_without_api_access_get_no_token(helm: Path, tmp_path: Path) -> None:
    specs = dict(pod_specs(render(helm, tmp_path, {})))
    assert (
        specs[f"Deployment/{RELEASE}-numaflow-rdma-coredns"]["automountServiceAccountToken"]
        is False
    )
    assert (
        specs[f"StatefulSet/{RELEASE}-numaflow-rdma-etcd"]["automountServiceAccountToken"] is False
    )


def test_etcd_statefulset_keeps_data(helm: Path, tmp_path: Path) -> None:
    manifests = render(helm, tmp_path, COMBINATIONS["custom-zone"])
    statefulset = find(manifests, "StatefulSet", "-etcd")
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]

    assert statefulset["spec"]["replicas"] == 3
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    members = next(arg for arg in args if arg.startswith("--initial-cluster="))
    assert members.count("=http://") == 3
    assert find(manifests, "PodDisruptionBudget", "-etcd")["spec"]["maxUnavailable"] == 1


def test_external_etcd_has_no_statefulset(helm: Path, tmp_path: Path) -> None:
    manifests = render(helm, tmp_path, COMBINATIONS["external-etcd"])
    assert not [m for m in manifests if m["kind"] in ("StatefulSet", "NetworkPolicy")]
    dnssync = find(manifests, "Deployment", "-dnssync")["spec"]["template"]["spec"]["containers"][0]
    env = container_env(dnssync)
    assert env["NUMAFLOW_RDMA_DNSSYNC_ETCD_CA_FILE"] == "/etc/numaflow-rdma/etcd-tls/ca.crt"
    assert env["NUMAFLOW_RDMA_DNSSYNC_ETCD_USERNAME"] == "dnssync"
    assert env["NUMAFLOW_RDMA_DNSSYNC_ETCD_PASSWORD"] == {
        "secretKeyRef": {"name": "dns-etcd-password", "key": "password"}
    }
    assert env["NUMAFLOW_RDMA_DNSSYNC_ETCD_PREFIX"] == "/dns/records"


def test_coredns_reads_password_from_secret(helm: Path, tmp_path: Path) -> None:
    manifests = render(helm, tmp_path, COMBINATIONS["external-etcd"])
    container = find(manifests, "Deployment", "-coredns")["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert container_env(container)["ETCD_PASSWORD"] == {
        "secretKeyRef": {"name": "dns-etcd-password", "key": "password"}
    }
    assert (
        "credentials dnssync {$ETCD_PASSWORD}"
        in find(manifests, "ConfigMap", "-coredns")["data"]["Corefile"]
    )


def test_cluster_dns_jobs_need_configure(helm: Path, tmp_path: Path) -> None:
    manifests = render(helm, tmp_path, {})
    assert not [m for m in manifests if m["kind"] == "Job"]


@pytest.mark.parametrize(
    ("combination", "form", "configmap"),
    [
        ("custom-zone", "forward-custom", "kube-system/coredns-custom"),
        ("kubeadm-single-replicas", "forward-kubeadm", "kube-system/coredns"),
    ],
)
def test_cluster_dns_jobs_apply_and_remove(
    helm: Path, tmp_path: Path, combination: str, form: str, configmap: str
) -> None:
    manifests = render(helm, tmp_path, COMBINATIONS[combination])
    apply_job = find(manifests, "Job", "-cluster-dns-apply")
    remove_job = find(manifests, "Job", "-cluster-dns-remove")
    apply_env = container_env(apply_job["spec"]["template"]["spec"]["containers"][0])
    remove_env = container_env(remove_job["spec"]["template"]["spec"]["containers"][0])

    assert apply_job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert remove_job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    assert apply_env["NUMAFLOW_RDMA_COREDNS_FORM"] == form
    assert apply_env["NUMAFLOW_RDMA_COREDNS_CLUSTER_DNS_CONFIGMAP"] == configmap
    assert (
        apply_env["NUMAFLOW_RDMA_COREDNS_UPSTREAM_SERVICE"]
        == f"{NAMESPACE}/{RELEASE}-numaflow-rdma-coredns"
    )
    assert "NUMAFLOW_RDMA_COREDNS_REMOVE" not in apply_env
    assert remove_env["NUMAFLOW_RDMA_COREDNS_REMOVE"] == "true"


def test_example_network_attachment_definition(helm: Path, tmp_path: Path) -> None:
    manifests = render(helm, tmp_path, COMBINATIONS["custom-zone"])
    definition = find(manifests, "NetworkAttachmentDefinition")
    config = json.loads(definition["spec"]["config"])

    assert definition["metadata"]["namespace"] == "rdma"
    assert definition["metadata"]["annotations"][names.MULTUS_RESOURCE_NAME_ANNOTATION] == (
        "rdma/rdma_shared_device_a"
    )
    assert config["name"] == "roce-net"
    assert config["ipam"] == {"type": "whereabouts", "range": "192.168.111.0/24"}
    webhook = find(manifests, "Deployment", "-webhook")["spec"]["template"]["spec"]["containers"][0]
    assert container_env(webhook)["NUMAFLOW_RDMA_WEBHOOK_NETWORK"] == "rdma/roce-net"


def test_images_match_tested_versions(helm: Path, tmp_path: Path) -> None:
    specs = dict(pod_specs(render(helm, tmp_path, {})))
    etcd_image = specs[f"StatefulSet/{RELEASE}-numaflow-rdma-etcd"]["containers"][0]["image"]
    coredns_image = specs[f"Deployment/{RELEASE}-numaflow-rdma-coredns"]["containers"][0]["image"]
    assert etcd_image.endswith(f":{binaries.ETCD_VERSION}")
    assert coredns_image.endswith(f":{binaries.COREDNS_VERSION.removeprefix('v')}")


SUBCOMMAND_MODULES = {
    "WEBHOOK": "numaflow_rdma.webhook.command",
    "DNSSYNC": "numaflow_rdma.dnssync.command",
    "COREDNS": "numaflow_rdma.coredns",
}


def subcommand_env_names(command: str) -> set[str]:
    """Return the environment variables the real subcommand reads, including the log options."""
    try:
        module = importlib.import_module(SUBCOMMAND_MODULES[command])
    except ModuleNotFoundError as error:
        pytest.skip(f"{SUBCOMMAND_MODULES[command]} is not written yet: {error}")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    flags = [
        flag
        for action in parser._actions
        for flag in action.option_strings
        if flag.startswith("--")
    ]
    return {env_name(command.lower(), flag) for flag in [*flags, "--log-format", "--log-level"]}


@pytest.mark.parametrize("command", sorted(SUBCOMMAND_MODULES))
@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_env_names_are_real_options(
    helm: Path, tmp_path: Path, command: str, combination: str
) -> None:
    prefix = f"NUMAFLOW_RDMA_{command}_"
    used = {
        name
        for _, spec in pod_specs(render(helm, tmp_path, COMBINATIONS[combination]))
        for container in spec["containers"]
        for name in container_env(container)
        if name.startswith(prefix)
    }
    unknown = used - subcommand_env_names(command)
    assert not unknown, (
        f"the chart sets variables that {command.lower()} does not read: {sorted(unknown)}"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"zone": "bad_zone"}, "/zone"),
        ({"webhook": {"failurePolicy": "Retry"}}, "/webhook/failurePolicy"),
        ({"webhook": {"timeoutSeconds": 31}}, "/webhook/timeoutSeconds"),
        ({"webhook": {"certificates": {"mode": "vault"}}}, "/webhook/certificates/mode"),
        ({"etcd": {"replicas": 2}}, "/etcd/replicas"),
        ({"etcd": {"prefix": "skydns"}}, "/etcd/prefix"),
        ({"etcd": {"external": {"endpoints": ["etcd:2379"]}}}, "/etcd/external/endpoints/0"),
        ({"clusterDns": {"configure": "yes"}}, "/clusterDns/configure"),
        ({"network": {"interface": "a-very-long-ifname0"}}, "/network/interface"),
        ({"coreDns": {"cache": {"ttl": 0}}}, "/coreDns/cache/ttl"),
        ({"webhok": {"replicas": 1}}, "additional properties 'webhok' not allowed"),
    ],
)
def test_schema_rejects_invalid_values(
    helm: Path, tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    result = template(helm, tmp_path, overrides)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"zone": "svc.cluster.local"}, 'overlaps "cluster.local"'),
        ({"zone": "arpa"}, 'overlaps "in-addr.arpa"'),
        ({"etcd": {"enabled": False}}, "etcd.external.endpoints is required"),
        (
            {
                "etcd": {
                    "enabled": False,
                    "external": {"endpoints": ["http://a:2379", "https://b:2379"]},
                }
            },
            "mixes http:// and https://",
        ),
        (
            {
                "etcd": {
                    "enabled": False,
                    "external": {"endpoints": ["http://a:2379"], "tls": {"enabled": True}},
                }
            },
            "use https:// endpoints",
        ),
        (
            {
                "etcd": {
                    "enabled": False,
                    "external": {"endpoints": ["https://a:2379"], "tls": {"enabled": True}},
                }
            },
            "etcd.external.tls.secretName is required",
        ),
        (
            {
                "etcd": {
                    "enabled": False,
                    "external": {"endpoints": ["http://a:2379"], "auth": {"username": "u"}},
                }
            },
            "passwordSecret.name is required",
        ),
        ({"dnssync": {"leaderElection": False}}, "needs dnssync.leaderElection"),
        ({"webhook": {"certificates": {"mode": "provided"}}}, "provided.secretName is required"),
        (
            {"webhook": {"certificates": {"mode": "provided", "provided": {"secretName": "s"}}}},
            "provided.caBundle is required",
        ),
        ({"clusterDns": {"configure": "custom", "configMap": "coredns"}}, "/clusterDns/configMap"),
    ],
)
def test_template_rejects_inconsistent_values(
    helm: Path, tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    result = template(helm, tmp_path, overrides)
    assert result.returncode != 0
    assert message in result.stderr


def literal_env(container: dict[str, Any]) -> dict[str, str]:
    """Return a container's env as the kubelet would give it, with stand-ins for references."""
    resolved = {"POD_NAME": "dnssync-0", "POD_NAMESPACE": NAMESPACE}
    env: dict[str, str] = {}
    for name, value in container_env(container).items():
        if isinstance(value, str):
            for variable, replacement in resolved.items():
                value = value.replace(f"$({variable})", replacement)
            env[name] = value
        else:
            env[name] = "from-a-secret"
    return env


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_dnssync_accepts_rendered_env(
    helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, combination: str
) -> None:
    command = pytest.importorskip("numaflow_rdma.dnssync.command")
    manifests = render(helm, tmp_path, COMBINATIONS[combination])
    container = find(manifests, "Deployment", "-dnssync")["spec"]["template"]["spec"]["containers"][
        0
    ]
    # dnssync reads its TLS files at start; the ones the chart mounts become
    # empty stand-ins here, at the same file names.
    for name, value in literal_env(container).items():
        if value.startswith("/etc/numaflow-rdma/"):
            stand_in = tmp_path / "mounted" / value.lstrip("/")
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.write_text("stand-in")
            value = str(stand_in)
        monkeypatch.setenv(name, value)

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    settings = command.settings_from_args(parser.parse_args([]))

    values = merge_values(chart_defaults(), COMBINATIONS[combination])
    assert settings.zone == values["zone"].lower().rstrip(".")
    assert settings.owner_id == "dnssync-0"
    assert settings.lease_namespace == NAMESPACE
    assert settings.leader_election is values["dnssync"]["leaderElection"]


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_webhook_parses_rendered_env(
    helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, combination: str
) -> None:
    command = pytest.importorskip("numaflow_rdma.webhook.command")
    manifests = render(helm, tmp_path, COMBINATIONS[combination])
    container = find(manifests, "Deployment", "-webhook")["spec"]["template"]["spec"]["containers"][
        0
    ]
    for name, value in literal_env(container).items():
        monkeypatch.setenv(name, value)

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args([])

    values = merge_values(chart_defaults(), COMBINATIONS[combination])
    network = values["network"]
    assert args.network == f"{network['namespace'] or NAMESPACE}/{network['name']}"
    assert args.port == values["webhook"]["port"]
    assert args.tls_cert_file == "/etc/numaflow-rdma/webhook-tls/tls.crt"


@pytest.mark.parametrize("combination", ["custom-zone", "kubeadm-single-replicas"])
def test_cluster_dns_job_renders_stanza(
    helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, combination: str
) -> None:
    from numaflow_rdma import coredns

    manifests = render(helm, tmp_path, COMBINATIONS[combination])
    job = find(manifests, "Job", "-cluster-dns-apply")
    for name, value in literal_env(job["spec"]["template"]["spec"]["containers"][0]).items():
        monkeypatch.setenv(name, value)

    parser = argparse.ArgumentParser()
    coredns.add_arguments(parser)
    args = parser.parse_args([])
    stanza = corefile.forward_server_block(coredns.forward_settings_from_args(args, ["10.96.0.53"]))

    values = merge_values(chart_defaults(), COMBINATIONS[combination])
    assert args.apply is True
    assert stanza.startswith(f"{values['zone'].lower().rstrip('.')}:53 {{\n")
    assert f"success 9984 {values['coreDns']['cache']['ttl']}\n" in stanza
