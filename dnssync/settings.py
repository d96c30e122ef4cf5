"""The settings of one dnssync instance, checked once when it starts.

``numaflow-rdma dnssync`` turns its command-line options into a ``Settings``
value here. The rest of the package takes that value and never reads options
or the environment itself. Only the standard library and the shared names
are imported, so ``--help`` works on a base install.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from numaflow_rdma import names
from numaflow_rdma.config import ConfigError, check_option, validate_ip_address

DEFAULT_ETCD_ENDPOINT = "http://127.0.0.1:2379"
DEFAULT_LEASE_NAME = "numaflow-rdma-dnssync"
DEFAULT_LEASE_DURATION = 15
DEFAULT_RESYNC_INTERVAL = 60.0
DEFAULT_HEALTH_PORT = 8080
DEFAULT_HEALTH_BIND_ADDRESS = "0.0.0.0"  # probes and Prometheus come from outside the pod
SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# DNS TTLs are unsigned 32-bit numbers whose top bit must be clear (RFC 2181, section 8).
MAX_RECORD_TTL = 2**31 - 1


@dataclass(frozen=True)
class EtcdEndpoint:
    """One etcd client URL, split into what a gRPC channel needs."""

    host: str
    port: int
    secure: bool

    def __str__(self) -> str:
        scheme = "https" if self.secure else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class EtcdSettings:
    """How to reach the etcd that CoreDNS reads records from."""

    endpoints: tuple[EtcdEndpoint, ...]
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 5.0
    """Seconds one etcd request may take."""


@dataclass(frozen=True)
class Settings:
    """Everything one dnssync instance is configured with; times are in seconds."""

    etcd: EtcdSettings
    zone: str = names.DEFAULT_ZONE
    prefix: str = names.DEFAULT_ETCD_PREFIX
    network: str = ""
    """NetworkAttachmentDefinition as ``namespace/name`` or ``name``; empty matches by interface."""
    interface: str = names.DEFAULT_INTERFACE
    transport_port: int = names.DEFAULT_TRANSPORT_PORT
    record_ttl: int = names.DEFAULT_RECORD_TTL
    owner_id: str = "dnssync"
    resync_interval: float = DEFAULT_RESYNC_INTERVAL
    publish_not_ready: bool = False
    leader_election: bool = True
    lease_name: str = DEFAULT_LEASE_NAME
    lease_namespace: str = "default"
    lease_duration: float = DEFAULT_LEASE_DURATION
    health_port: int = DEFAULT_HEALTH_PORT
    health_bind_address: str = DEFAULT_HEALTH_BIND_ADDRESS
    dry_run: bool = False
    kubeconfig: str = ""

    @property
    def zone_prefix(self) -> str:
        """Return the etcd key under which every record of the zone sits, ending in ``/``."""
        return names.zone_etcd_prefix(self.zone, self.prefix)


def parse_etcd_endpoints(text: str) -> tuple[EtcdEndpoint, ...]:
    """Parse comma-separated etcd URLs such as ``https://etcd-0.etcd:2379,http://127.0.0.1:2379``.

    A URL without a scheme is taken as ``http://``; a URL without a port gets 2379.
    """
    endpoints = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        url = urlsplit(item if "://" in item else f"http://{item}")
        if url.scheme not in ("http", "https"):
            raise ConfigError(
                f"invalid --etcd-endpoints entry {item!r}: expected an http:// or https:// URL, "
                f"got scheme {url.scheme!r}"
            )
        try:
            port = url.port or 2379
        except ValueError as error:
            raise ConfigError(f"invalid --etcd-endpoints entry {item!r}: {error}") from error
        if not url.hostname:
            raise ConfigError(f"invalid --etcd-endpoints entry {item!r}: the host is missing")
        endpoints.append(EtcdEndpoint(url.hostname, port, url.scheme == "https"))
    if not endpoints:
        raise ConfigError(
            f"missing --etcd-endpoints: expected comma-separated URLs such as {DEFAULT_ETCD_ENDPOINT}"
        )
    return tuple(endpoints)


def default_owner_id() -> str:
    """Return the pod name from ``$POD_NAME``, else the host name."""
    return os.environ.get("POD_NAME") or socket.gethostname()


def default_lease_namespace() -> str:
    """Return ``$POD_NAMESPACE``, else the service account's namespace in a pod, else ``default``."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE_FILE, encoding="utf-8") as namespace_file:
            return namespace_file.read().strip() or "default"
    except OSError:
        return "default"


def validate_settings(settings: Settings) -> Settings:
    """Raise ConfigError naming the first setting that cannot work; return ``settings``."""
    _validate_names(settings)
    _validate_numbers(settings)
    _validate_etcd(settings.etcd)
    return settings


def _validate_names(settings: Settings) -> None:
    check_option("--zone", names.validate_zone, settings.zone)
    check_option("--etcd-prefix", names.zone_etcd_prefix, settings.zone, settings.prefix)
    if settings.interface:
        check_option("--interface", names.validate_interface, settings.interface)

    if settings.network.count("/") > 1 or settings.network.strip("/") != settings.network:
        raise ConfigError(
            f"invalid --network {settings.network!r}: expected namespace/name or name of a "
            "NetworkAttachmentDefinition"
        )
    if not settings.network and not settings.interface:
        raise ConfigError(
            "set --network or --interface, or both: one is needed to find the RDMA address"
        )
    if not settings.owner_id:
        raise ConfigError("invalid --owner-id: it is empty")


def _validate_numbers(settings: Settings) -> None:
    if not 0 < settings.transport_port < 65536:
        raise ConfigError(f"invalid --transport-port {settings.transport_port}: expected 1-65535")
    if not 0 < settings.record_ttl <= MAX_RECORD_TTL:
        raise ConfigError(
            f"invalid --record-ttl {settings.record_ttl}: expected 1 to {MAX_RECORD_TTL} seconds"
        )
    if settings.resync_interval <= 0:
        raise ConfigError(
            f"invalid --resync-interval {settings.resync_interval}: expected seconds above 0"
        )
    if settings.lease_duration < 1:
        raise ConfigError(
            f"invalid --lease-duration {settings.lease_duration}: expected at least 1 second"
        )
    if not 0 <= settings.health_port < 65536:
        raise ConfigError(f"invalid --health-port {settings.health_port}: expected 0-65535")
    validate_ip_address(settings.health_bind_address, "--health-bind-address")


def _validate_etcd(etcd: EtcdSettings) -> None:
    for option, path in (
        ("--etcd-ca-file", etcd.ca_file),
        ("--etcd-cert-file", etcd.cert_file),
        ("--etcd-key-file", etcd.key_file),
    ):
        if path:
            try:
                with open(path, "rb"):
                    pass
            except OSError as error:
                raise ConfigError(f"cannot read {option} {path}: {error.strerror}") from error

    if bool(etcd.cert_file) != bool(etcd.key_file):
        raise ConfigError(
            "set both --etcd-cert-file and --etcd-key-file for a client certificate, or neither"
        )
    if bool(etcd.username) != bool(etcd.password):
        raise ConfigError("set both --etcd-username and --etcd-password, or neither")
    if (etcd.ca_file or etcd.cert_file) and not all(endpoint.secure for endpoint in etcd.endpoints):
        raise ConfigError(
            "TLS files are set but an etcd endpoint uses http://: use https:// endpoints with "
            "--etcd-ca-file, --etcd-cert-file and --etcd-key-file"
        )
