"""``numaflow-rdma dnssync``: the command-line options and the process around the controller.

Every option can also be set through ``NUMAFLOW_RDMA_DNSSYNC_<OPTION>``. Only
the standard library and the shared modules are imported here at load time.
The Kubernetes, etcd and Prometheus clients are imported inside ``run``.

The service account needs: list and watch on pods and namespaces in all
namespaces; create on events; get, create and update on leases in the Lease
namespace when leader election is on.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from dataclasses import replace
from typing import Any

from numaflow_rdma import names
from numaflow_rdma.config import ConfigError, add_flag, add_option
from numaflow_rdma.dnssync import settings as defaults
from numaflow_rdma.dnssync.settings import (
    EtcdSettings,
    Settings,
    default_lease_namespace,
    default_owner_id,
    parse_etcd_endpoints,
    validate_settings,
)

COMMAND = "dnssync"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``numaflow-rdma dnssync``."""
    etcd = parser.add_argument_group("DNS etcd")
    add_option(
        etcd,
        COMMAND,
        "--etcd-endpoints",
        help="comma-separated client URLs of the etcd that CoreDNS reads records from; "
        "https:// URLs use TLS",
        default=defaults.DEFAULT_ETCD_ENDPOINT,
        metavar="URLS",
    )
    add_option(
        etcd,
        COMMAND,
        "--etcd-ca-file",
        help="PEM file of the CA that signed etcd's serving "
        "certificate; empty uses the system's CAs for https:// endpoints",
        default="",
        metavar="PATH",
    )
    add_option(
        etcd,
        COMMAND,
        "--etcd-cert-file",
        help="PEM client certificate for etcd, with --etcd-key-file",
        default="",
        metavar="PATH",
    )
    add_option(
        etcd,
        COMMAND,
        "--etcd-key-file",
        help="PEM private key of the etcd client certificate",
        default="",
        metavar="PATH",
    )
    add_option(
        etcd,
        COMMAND,
        "--etcd-username",
        help="etcd user name, with --etcd-password",
        default="",
        metavar="NAME",
    )
    add_option(
        etcd,
        COMMAND,
        "--etcd-password",
        help="etcd password; set it from a Secret through the environment variable, because "
        "command-line arguments are visible to every process on the node",
        default="",
        metavar="PASSWORD",
    )
    add_option(
        etcd,
        COMMAND,
        "--etcd-prefix",
        help="etcd key prefix of the CoreDNS etcd plugin (its 'path')",
        default=names.DEFAULT_ETCD_PREFIX,
        metavar="PREFIX",
    )

    records = parser.add_argument_group("records")
    add_option(
        records, COMMAND, "--zone", help="DNS zone of the vertex names", default=names.DEFAULT_ZONE
    )
    add_option(
        records,
        COMMAND,
        "--network",
        help="NetworkAttachmentDefinition of the RDMA network as namespace/name (a bare name means "
        "the pod's namespace), matched against network-status entry names; empty matches by "
        "--interface",
        default="",
        metavar="NAMESPACE/NAME",
    )
    add_option(
        records,
        COMMAND,
        "--interface",
        help="interface name of the RDMA network in the pod, at most 15 characters; matches "
        "network-status entries when --network is empty, and picks one when the network is "
        "attached twice",
        default=names.DEFAULT_INTERFACE,
        metavar="NAME",
    )
    add_option(
        records,
        COMMAND,
        "--transport-port",
        help="TCP port in each record, returned in SRV answers",
        default=names.DEFAULT_TRANSPORT_PORT,
        type=int,
        metavar="PORT",
    )
    add_option(
        records,
        COMMAND,
        "--record-ttl",
        help="TTL of each record in seconds",
        default=names.DEFAULT_RECORD_TTL,
        type=int,
        metavar="SECONDS",
    )
    add_option(
        records,
        COMMAND,
        "--owner-id",
        help="owner written into each record; records of other owners are never changed",
        default="",
        default_help="$POD_NAME, else the host name",
        metavar="ID",
    )
    add_option(
        records,
        COMMAND,
        "--resync-interval",
        help="seconds between full syncs, which read etcd again and repair drift",
        default=defaults.DEFAULT_RESYNC_INTERVAL,
        type=float,
        metavar="SECONDS",
    )
    add_flag(
        records,
        COMMAND,
        "--publish-not-ready",
        help="publish pods that have an address "
        "but are not Ready, as a headless Service with publishNotReadyAddresses does",
    )

    election = parser.add_argument_group("leader election")
    add_flag(
        election,
        COMMAND,
        "--leader-election",
        default=True,
        help="take a coordination.k8s.io Lease so only one replica writes; a leader adopts the "
        "records of the leaders before it",
    )
    add_option(
        election,
        COMMAND,
        "--lease-name",
        help="name of the Lease",
        default=defaults.DEFAULT_LEASE_NAME,
        metavar="NAME",
    )
    add_option(
        election,
        COMMAND,
        "--lease-namespace",
        help="namespace of the Lease",
        default="",
        default_help="$POD_NAMESPACE, else the service account's namespace, else default",
        metavar="NAMESPACE",
    )
    add_option(
        election,
        COMMAND,
        "--lease-duration",
        help="seconds a standby waits for a silent leader before taking over",
        default=defaults.DEFAULT_LEASE_DURATION,
        type=float,
        metavar="SECONDS",
    )

    operations = parser.add_argument_group("operations")
    add_option(
        operations,
        COMMAND,
        "--health-port",
        help="TCP port of /healthz, /readyz and /metrics; 0 picks a free one",
        default=defaults.DEFAULT_HEALTH_PORT,
        type=int,
        metavar="PORT",
    )
    add_option(
        operations,
        COMMAND,
        "--health-bind-address",
        help="address the health and metrics server listens on",
        default=defaults.DEFAULT_HEALTH_BIND_ADDRESS,
        metavar="ADDRESS",
    )
    add_flag(
        operations,
        COMMAND,
        "--dry-run",
        help="read the API and etcd and log each planned change, but write nothing; takes no Lease",
    )
    add_option(
        operations,
        COMMAND,
        "--kubeconfig",
        help="kubeconfig file; empty uses the pod's service account",
        default="",
        metavar="PATH",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Build and check the Settings from parsed options; raise ConfigError."""
    settings = Settings(
        etcd=EtcdSettings(
            endpoints=parse_etcd_endpoints(args.etcd_endpoints),
            ca_file=args.etcd_ca_file,
            cert_file=args.etcd_cert_file,
            key_file=args.etcd_key_file,
            username=args.etcd_username,
            password=args.etcd_password,
        ),
        zone=args.zone,
        prefix=args.etcd_prefix,
        network=args.network,
        interface=args.interface,
        transport_port=args.transport_port,
        record_ttl=args.record_ttl,
        owner_id=args.owner_id or default_owner_id(),
        resync_interval=args.resync_interval,
        publish_not_ready=args.publish_not_ready,
        leader_election=args.leader_election,
        lease_name=args.lease_name,
        lease_namespace=args.lease_namespace or default_lease_namespace(),
        lease_duration=args.lease_duration,
        health_port=args.health_port,
        health_bind_address=args.health_bind_address,
        dry_run=args.dry_run,
        kubeconfig=args.kubeconfig,
    )
    if settings.dry_run and settings.leader_election:
        # A dry-run replica holding the Lease would keep the real leader from writing.
        settings = replace(settings, leader_election=False)
    return validate_settings(settings)


def run(args: argparse.Namespace) -> int:
    """Run dnssync until SIGTERM or SIGINT; return the exit status."""
    settings = settings_from_args(args)

    from numaflow_rdma.dnssync.controller import Controller
    from numaflow_rdma.dnssync.etcd import DryRunStore, EtcdRecordStore
    from numaflow_rdma.dnssync.health import HealthServer
    from numaflow_rdma.dnssync.kube import api_client_from
    from numaflow_rdma.dnssync.metrics import Metrics

    stop = threading.Event()
    _stop_on_signals(stop)
    metrics = Metrics()
    etcd_store = EtcdRecordStore(settings.etcd, metrics=metrics, stop=stop)
    store: Any = DryRunStore(etcd_store) if settings.dry_run else etcd_store
    try:
        api_client = api_client_from(settings.kubeconfig)
    except Exception as error:  # the kubernetes package raises several types here
        raise ConfigError(
            f"cannot configure the Kubernetes client: {error}; outside a cluster, set "
            "--kubeconfig to a kubeconfig file"
        ) from error
    controller = Controller(settings, api_client, store, metrics=metrics, stop=stop)
    try:
        health = HealthServer(
            settings.health_bind_address,
            settings.health_port,
            liveness=controller.liveness,
            readiness=controller.readiness,
            registry=metrics.registry,
        )
    except OSError as error:
        api_client.close()
        raise ConfigError(
            f"cannot listen on {settings.health_bind_address}:{settings.health_port} for "
            f"/healthz, /readyz and /metrics: {error.strerror}; choose another --health-port"
        ) from error

    logger.info(
        "Starting dnssync %s: owner %s, zone %s, etcd %s under %s, network %s, leader election %s%s.",
        controller.identity,
        settings.owner_id,
        settings.zone,
        ",".join(map(str, settings.etcd.endpoints)),
        settings.prefix,
        settings.network or f"interface {settings.interface}",
        f"on (Lease {settings.lease_namespace}/{settings.lease_name})"
        if settings.leader_election
        else "off",
        ", dry run: nothing is written" if settings.dry_run else "",
    )
    health.start()
    controller.start()
    try:
        stop.wait()
    finally:
        logger.info("Stopping dnssync.")
        controller.stop()
        health.stop()
        etcd_store.close()
        api_client.close()
        logger.info("Stopped dnssync.")
    return 0


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, frame: object) -> None:
        logger.info("Received %s.", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
