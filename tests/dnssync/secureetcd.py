"""An etcd on loopback that requires TLS client certificates and a user name and password.

The shared control plane's etcd is plain HTTP. dnssync must also work with
the locked-down etcd a cluster runs, so this starts one with
``--client-cert-auth`` and enables etcd authentication with a user that may
only read and write under the record prefix.
"""

from __future__ import annotations

from pathlib import Path

from numaflow_rdma import certs
from numaflow_rdma.controlplane import binaries
from numaflow_rdma.controlplane.process import LOOPBACK, ManagedProcess, free_ports

ROOT_PASSWORD = "root-password-for-tests"  # a throwaway test etcd
USER = "dnssync"
PASSWORD = "dnssync-password-for-tests"  # a throwaway test etcd


class SecureEtcd:
    """etcd with TLS, client certificate authentication and etcd users."""

    def __init__(self, work_dir: Path, prefix: str = "/skydns/") -> None:
        self.work_dir = work_dir
        self.prefix = prefix
        self.client_port, self.peer_port = free_ports(2)
        self.ca = certs.make_ca("test etcd CA")
        self.ca_file = work_dir / "etcd-ca.crt"
        self.ca_file.write_bytes(self.ca.certificate_pem)
        server = certs.issue_certificate(self.ca, "etcd", hosts=["localhost", LOOPBACK])
        self.server_cert, self.server_key = work_dir / "etcd.crt", work_dir / "etcd.key"
        server.write(self.server_cert, self.server_key)
        client = certs.issue_certificate(self.ca, USER, server=False, client=True)
        self.client_cert, self.client_key = work_dir / "client.crt", work_dir / "client.key"
        client.write(self.client_cert, self.client_key)
        client_url = f"https://{LOOPBACK}:{self.client_port}"
        peer_url = f"http://{LOOPBACK}:{self.peer_port}"
        self._process = ManagedProcess(
            "etcd-secure",
            [
                str(binaries.ensure("etcd")),
                "--name=secure",
                f"--data-dir={work_dir / 'etcd-secure.data'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=secure={peer_url}",
                f"--cert-file={self.server_cert}",
                f"--key-file={self.server_key}",
                f"--trusted-ca-file={self.ca_file}",
                "--client-cert-auth",
                "--logger=zap",
                "--log-level=warn",
                "--unsafe-no-fsync",
            ],
            work_dir / "etcd-secure.log",
        )

    @property
    def endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.client_port}"

    def client(self, user: str | None = None, password: str | None = None) -> object:
        import pyetcd

        return pyetcd.client(
            host=LOOPBACK,
            port=self.client_port,
            ca_cert=str(self.ca_file),
            cert_key=str(self.client_key),
            cert_cert=str(self.client_cert),
            user=user,
            password=password,
            timeout=5,
        )

    def start(self) -> None:
        """Start etcd, wait for it, and turn on authentication with the test user."""
        self._process.start()
        self._process.wait_ready(self._answers, 20.0)
        self._enable_auth()

    def _answers(self) -> bool:
        client = self.client()
        try:
            client.status()  # type: ignore[attr-defined]
            return True
        finally:
            client.close()  # type: ignore[attr-defined]

    def _enable_auth(self) -> None:
        from pyetcd import etcdrpc

        client = self.client()
        try:
            auth = client.authstub  # type: ignore[attr-defined]
            auth.RoleAdd(etcdrpc.AuthRoleAddRequest(name="root"), 5)
            auth.UserAdd(etcdrpc.AuthUserAddRequest(name="root", password=ROOT_PASSWORD), 5)
            auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user="root", role="root"), 5)
            auth.RoleAdd(etcdrpc.AuthRoleAddRequest(name="records"), 5)
            auth.RoleGrantPermission(
                etcdrpc.AuthRoleGrantPermissionRequest(
                    name="records",
                    perm=etcdrpc.Permission(
                        permType=etcdrpc.Permission.READWRITE,
                        key=self.prefix.encode(),
                        range_end=(self.prefix[:-1] + chr(ord(self.prefix[-1]) + 1)).encode(),
                    ),
                ),
                5,
            )
            auth.UserAdd(etcdrpc.AuthUserAddRequest(name=USER, password=PASSWORD), 5)
            auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user=USER, role="records"), 5)
            auth.AuthEnable(etcdrpc.AuthEnableRequest(), 5)
        finally:
            client.close()  # type: ignore[attr-defined]

    def stop(self) -> None:
        self._process.stop()
