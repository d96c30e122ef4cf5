"""A kube-apiserver on loopback with TLS, RBAC and a kubeconfig for an admin.

This is the envtest approach: the real API server over a real etcd, with no
scheduler, controller manager or kubelet. What that means for tests:

- Admission runs for real, so a MutatingWebhookConfiguration makes the API
  server call the webhook over TLS and store the patched pod.
- Pods are never scheduled, so they stay Pending until a test writes their
  status through the ``pods/status`` subresource, as a kubelet would, and a
  delete removes an unscheduled pod at once.
- No controller creates the ``default`` ServiceAccount of a namespace, so the
  ServiceAccount admission plugin is turned off; otherwise every pod would be
  rejected for want of it.
"""

from __future__ import annotations

import json
import logging
import ssl
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from numaflow_rdma import certs
from numaflow_rdma.controlplane import binaries
from numaflow_rdma.controlplane.process import LOOPBACK, ManagedProcess, free_port

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

logger = logging.getLogger(__name__)

ADMIN_USER = "numaflow-rdma-admin"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/24"


def _service_account_keys(work_dir: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private_path = work_dir / "service-account.key"
    public_path = work_dir / "service-account.pub"
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


class KubeApiServer:
    """kube-apiserver backed by the given etcd endpoint, serving on a free loopback port."""

    def __init__(self, etcd_endpoint: str, work_dir: Path) -> None:
        self.work_dir = work_dir / "kube-apiserver"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.etcd_endpoint = etcd_endpoint

        # First, the CA, the serving certificate and the admin's client certificate.
        self.ca = certs.make_ca("numaflow-rdma local cluster CA")
        self.ca_path = self.work_dir / "ca.crt"
        self.ca_path.write_bytes(self.ca.certificate_pem)
        serving = certs.issue_certificate(
            self.ca,
            "kube-apiserver",
            hosts=["localhost", LOOPBACK, "kubernetes", "kubernetes.default.svc"],
        )
        self.serving_cert_path = self.work_dir / "serving.crt"
        self.serving_key_path = self.work_dir / "serving.key"
        serving.write(self.serving_cert_path, self.serving_key_path)
        # system:masters is the group that RBAC grants everything.
        admin = certs.issue_certificate(
            self.ca, ADMIN_USER, organizations=["system:masters"], server=False, client=True
        )
        self.admin_cert_path = self.work_dir / "admin.crt"
        self.admin_key_path = self.work_dir / "admin.key"
        admin.write(self.admin_cert_path, self.admin_key_path)

        # Then the service-account token keys and the kubeconfig.
        self.service_account_key_path, self.service_account_pub_path = _service_account_keys(
            self.work_dir
        )
        self.kubeconfig_path = self.work_dir / "kubeconfig"
        self.kubeconfig_path.write_text(json.dumps(self.kubeconfig(), indent=2))

        self._process = ManagedProcess("kube-apiserver", self._command(), self.work_dir / "log")

    @property
    def url(self) -> str:
        """Return the API server's URL, ``https://127.0.0.1:<port>``."""
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Return the PID of the API server, or None when it is stopped."""
        return self._process.pid

    def kubeconfig(self) -> dict[str, Any]:
        """Return a kubeconfig for the admin user, with file paths to the certificates."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_path)},
                }
            ],
            "users": [
                {
                    "name": ADMIN_USER,
                    "user": {
                        "client-certificate": str(self.admin_cert_path),
                        "client-key": str(self.admin_key_path),
                    },
                }
            ],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": ADMIN_USER}}],
            "current-context": "local",
        }

    def _command(self) -> list[str]:
        return [
            str(binaries.ensure("kube-apiserver")),
            f"--etcd-servers={self.etcd_endpoint}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={self.port}",
            f"--tls-cert-file={self.serving_cert_path}",
            f"--tls-private-key-file={self.serving_key_path}",
            f"--client-ca-file={self.ca_path}",
            f"--service-account-key-file={self.service_account_pub_path}",
            f"--service-account-signing-key-file={self.service_account_key_path}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            f"--cert-dir={self.work_dir / 'cert-dir'}",
        ]

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        context.load_cert_chain(str(self.admin_cert_path), str(self.admin_key_path))
        return context

    def is_ready(self) -> bool:
        """Return True once ``/readyz`` answers ok."""
        with urllib.request.urlopen(
            f"{self.url}/readyz", timeout=2, context=self._ssl_context()
        ) as response:
            return bool(response.status == 200)

    def start(self) -> None:
        """Start the API server; returns at once, call ``wait_ready`` before use."""
        self._process.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until ``/readyz`` answers ok."""
        self._process.wait_ready(self.is_ready, timeout)
        logger.info("kube-apiserver is ready at %s (PID %s).", self.url, self.pid)

    def stop(self) -> None:
        """Stop the API server by its PID."""
        self._process.stop()

    def restart(self, timeout: float = 60.0) -> None:
        """Stop the API server and start it again on the same port over the same etcd."""
        self.stop()
        self.start()
        self.wait_ready(timeout)

    def api_client(self) -> ApiClient:
        """Return a ``kubernetes`` client configured as the admin user."""
        from kubernetes import config

        api_client: ApiClient = config.new_client_from_config(config_file=str(self.kubeconfig_path))
        return api_client

    def log_tail(self) -> str:
        """Return the end of the API server's log."""
        return self._process.log_tail()
