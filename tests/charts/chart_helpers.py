"""Rendering the chart with the real Helm, and the value combinations the chart tests cover."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from numaflow_rdma.controlplane import binaries

CHART = Path(__file__).resolve().parents[2] / "charts" / "numaflow-rdma"
KUBE_VERSION = binaries.KUBERNETES_VERSION
RELEASE = "nr"
NAMESPACE = "numaflow-rdma"
HELM_TIMEOUT = 120

# Value overrides by name: the default install and the combinations an
# administrator is expected to use.
COMBINATIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "cert-manager-cluster-issuer": {
        "webhook": {
            "certificates": {
                "mode": "certManager",
                "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}},
            }
        }
    },
    "self-signed": {"webhook": {"certificates": {"mode": "generate"}}},
    "provided-certificate": {
        "webhook": {
            "certificates": {
                "mode": "provided",
                "provided": {"secretName": "webhook-serving", "caBundle": "Q0EgYnVuZGxl"},
            }
        }
    },
    "external-etcd": {
        "etcd": {
            "enabled": False,
            "prefix": "/dns/records/",
            "external": {
                "endpoints": ["https://etcd-a.dns.example:2379", "https://etcd-b.dns.example:2379"],
                "tls": {"enabled": True, "secretName": "dns-etcd-client"},
                "auth": {"username": "dnssync", "passwordSecret": {"name": "dns-etcd-password"}},
            },
        }
    },
    "external-etcd-server-tls-only": {
        "etcd": {
            "enabled": False,
            "external": {
                "endpoints": ["https://etcd.dns.example:2379"],
                "tls": {"enabled": True, "secretName": "dns-etcd-ca", "clientCertificate": False},
            },
        }
    },
    "custom-zone": {
        "zone": "Frames.Example.",
        "clusterDomain": "k8s.internal",
        "transportPort": 9470,
        "network": {
            "namespace": "rdma",
            "name": "roce-net",
            "interface": "net2",
            "createExample": True,
        },
        "etcd": {"replicas": 3},
        "coreDns": {"containerPort": 5353, "cache": {"ttl": 10, "denialTTL": 2, "serveStale": 600}},
        "clusterDns": {"configure": "custom"},
    },
    "kubeadm-single-replicas": {
        "webhook": {"replicas": 1, "certificates": {"mode": "generate"}},
        "dnssync": {"replicas": 1, "leaderElection": False},
        "coreDns": {"replicas": 1, "lameduck": 0, "logQueries": True, "cache": {"serveStale": 0}},
        "clusterDns": {"configure": "kubeadm"},
        "network": {"resourceName": "nvidia.com/hostdev"},
    },
}


def chart_defaults() -> dict[str, Any]:
    """Return the chart's values.yaml."""
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def merge_values(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``overrides`` into ``base`` the way Helm merges -f files: maps deeply, the rest replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Helm with a time limit and return the result, whatever the exit status."""
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=HELM_TIMEOUT, check=False
    )


def values_file(tmp_path: Path, overrides: Mapping[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(dict(overrides)))
    return path


def template(
    helm: Path,
    tmp_path: Path,
    overrides: Mapping[str, Any],
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> subprocess.CompletedProcess[str]:
    """Run ``helm template`` with ``overrides`` and return the result."""
    return run_helm(
        helm,
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        "-f",
        str(values_file(tmp_path, overrides)),
    )


def render(
    helm: Path,
    tmp_path: Path,
    overrides: Mapping[str, Any],
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> list[dict[str, Any]]:
    """Render the chart and return its manifests; fail with Helm's message if rendering fails."""
    result = template(helm, tmp_path, overrides, release=release, namespace=namespace)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(manifests: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    """Return the one manifest of ``kind`` whose name ends with ``name_suffix``."""
    matches = [
        manifest
        for manifest in manifests
        if manifest["kind"] == kind and manifest["metadata"]["name"].endswith(name_suffix)
    ]
    assert len(matches) == 1, f"expected one {kind} named *{name_suffix}, found {len(matches)}"
    return matches[0]


def pod_specs(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(kind/name, pod spec)`` of every workload."""
    for manifest in manifests:
        if manifest["kind"] in ("Deployment", "StatefulSet", "Job"):
            name = f"{manifest['kind']}/{manifest['metadata']['name']}"
            yield name, manifest["spec"]["template"]["spec"]


def container_env(container: Mapping[str, Any]) -> dict[str, Any]:
    """Return a container's env as name to value, or to valueFrom for references."""
    return {
        item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])
    }


class AdminApi:
    """HTTP access to the test API server as its admin, for calls the kubernetes client lacks."""

    def __init__(self, url: str, ca_path: Path, cert_path: Path, key_path: Path) -> None:
        import requests

        self.url = url
        self.session = requests.Session()
        # Environment CA bundles and proxies would override the settings below.
        self.session.trust_env = False
        self.session.cert = (str(cert_path), str(key_path))
        self.session.verify = str(ca_path)

    def close(self) -> None:
        self.session.close()

    def collection_url(self, manifest: Mapping[str, Any], namespace: str) -> str:
        """Return the collection URL of ``manifest``'s kind, found through API discovery."""
        api_version = manifest["apiVersion"]
        group_path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        discovery = self.session.get(f"{self.url}{group_path}", timeout=10)
        assert discovery.status_code == 200, f"{api_version} is not served: {discovery.text}"
        for resource in discovery.json()["resources"]:
            if resource["kind"] == manifest["kind"] and "/" not in resource["name"]:
                if resource["namespaced"]:
                    return f"{self.url}{group_path}/namespaces/{namespace}/{resource['name']}"
                return f"{self.url}{group_path}/{resource['name']}"
        raise AssertionError(f"{manifest['kind']} is not served by {api_version}")
