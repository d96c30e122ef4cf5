"""``numaflow-rdma webhook``: serve the mutating admission webhook over HTTPS.

Only the standard library and ``numaflow_rdma.config``/``names`` are imported
here, so ``numaflow-rdma --help`` works without the webhook's extras; Flask,
gunicorn and the Kubernetes client are imported inside ``run``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from numaflow_rdma.config import ConfigError, add_flag, add_option, validate_ip_address
from numaflow_rdma.names import DEFAULT_INTERFACE, DEFAULT_TRANSPORT_PORT, DEFAULT_ZONE

logger = logging.getLogger(__name__)

COMMAND = "webhook"


def _add_injection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("injection")
    add_option(
        group,
        COMMAND,
        "--network",
        help="RDMA NetworkAttachmentDefinition to attach, as namespace/name (a bare name means "
        "the pod's namespace); required",
        metavar="NAMESPACE/NAME",
    )
    add_option(
        group,
        COMMAND,
        "--interface",
        help="name of the RDMA network interface in the pod, at most 15 characters; a free netN "
        "name is used when another attachment of the pod already has it",
        default=DEFAULT_INTERFACE,
        metavar="NAME",
    )
    add_option(
        group,
        COMMAND,
        "--resource-name",
        help="device-plugin resource to request, such as rdma/hca_shared_devices_a; empty to "
        "read it from the NetworkAttachmentDefinition's k8s.v1.cni.cncf.io/resourceName annotation",
        default="",
        metavar="NAME",
    )
    add_option(
        group,
        COMMAND,
        "--resource-count",
        help="units of the device resource to request and limit, per pod",
        default=1,
        type=int,
        metavar="COUNT",
    )
    add_option(
        group,
        COMMAND,
        "--transport-port",
        help="TCP port of the transport receiver, written to NUMAFLOW_RDMA_PORT",
        default=DEFAULT_TRANSPORT_PORT,
        type=int,
        metavar="PORT",
    )
    add_option(
        group,
        COMMAND,
        "--zone",
        help="DNS zone of the vertex names written to NUMAFLOW_RDMA_VERTEX and NUMAFLOW_RDMA_DESTINATIONS",
        default=DEFAULT_ZONE,
        metavar="ZONE",
    )


def _add_kubernetes_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Kubernetes API")
    add_option(
        group,
        COMMAND,
        "--kubeconfig",
        help="kubeconfig file for reading NetworkAttachmentDefinitions; empty for the in-cluster "
        "service account",
        default="",
        metavar="PATH",
    )
    add_option(
        group,
        COMMAND,
        "--api-timeout",
        help="timeout of one NetworkAttachmentDefinition read, in seconds",
        default=3.0,
        type=float,
        metavar="SECONDS",
    )
    add_option(
        group,
        COMMAND,
        "--nad-cache-ttl",
        help="time a NetworkAttachmentDefinition's resource name is reused before it is read "
        "again, in seconds",
        default=30.0,
        type=float,
        metavar="SECONDS",
    )


def _add_serving_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("serving")
    add_option(
        group,
        COMMAND,
        "--bind-address",
        help="IP address to listen on: 0.0.0.0 for every IPv4 address, :: for every IPv6 one",
        default="0.0.0.0",
        metavar="ADDRESS",
    )
    add_option(
        group,
        COMMAND,
        "--port",
        help="TCP port to serve HTTPS on",
        default=8443,
        type=int,
        metavar="PORT",
    )
    add_option(
        group,
        COMMAND,
        "--tls-cert-file",
        help="PEM file of the serving certificate chain; reloaded when it changes",
        default="/etc/numaflow-rdma/tls/tls.crt",
        metavar="PATH",
    )
    add_option(
        group,
        COMMAND,
        "--tls-key-file",
        help="PEM file of the serving certificate's private key; reloaded when it changes",
        default="/etc/numaflow-rdma/tls/tls.key",
        metavar="PATH",
    )
    add_option(
        group,
        COMMAND,
        "--workers",
        help="number of gunicorn worker processes",
        default=2,
        type=int,
        metavar="COUNT",
    )
    add_option(
        group,
        COMMAND,
        "--threads",
        help="number of request threads in each worker process",
        default=4,
        type=int,
        metavar="COUNT",
    )
    add_flag(group, COMMAND, "--access-log", help="log one line per HTTP request")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``numaflow-rdma webhook``."""
    _add_injection_options(parser)
    _add_kubernetes_options(parser)
    _add_serving_options(parser)


def _settings(args: argparse.Namespace) -> Any:
    from numaflow_rdma.webhook.injection import Settings

    if not args.network:
        raise ConfigError(
            "missing --network: name the RDMA NetworkAttachmentDefinition, for example "
            "--network infra/rdma-net"
        )
    try:
        return Settings(
            network=args.network,
            interface=args.interface,
            transport_port=args.transport_port,
            zone=args.zone,
            resource_count=args.resource_count,
        ).validate()
    except ValueError as error:
        raise ConfigError(str(error)) from error


def _check_serving(args: argparse.Namespace) -> None:
    from numaflow_rdma.webhook.tls import load_server_context

    if not 0 < args.port < 65536:
        raise ConfigError(f"invalid --port {args.port}: expected 1-65535")
    validate_ip_address(args.bind_address, "--bind-address")
    if args.workers < 1 or args.threads < 1:
        raise ConfigError(
            f"invalid --workers {args.workers} or --threads {args.threads}: expected 1 or more"
        )
    if args.api_timeout <= 0:
        raise ConfigError(
            f"invalid --api-timeout {args.api_timeout}: expected a positive number of seconds"
        )
    if args.nad_cache_ttl < 0:
        raise ConfigError(
            f"invalid --nad-cache-ttl {args.nad_cache_ttl}: expected 0 or more seconds"
        )
    try:
        load_server_context(Path(args.tls_cert_file), Path(args.tls_key_file))
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"loading the serving certificate {args.tls_cert_file} with key {args.tls_key_file} "
            f"failed: {error}; make a pair with 'numaflow-rdma certs'"
        ) from error


def _api_client(kubeconfig: str) -> Any:
    from kubernetes import client, config

    try:
        if kubeconfig:
            return config.new_client_from_config(config_file=kubeconfig)
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException as error:
        where = kubeconfig or "the in-cluster service account"
        raise ConfigError(
            f"configuring the Kubernetes client from {where} failed: {error}; set --kubeconfig "
            "outside a cluster, or --resource-name to need no API access"
        ) from error


def _app_factory(args: argparse.Namespace, settings: Any) -> Callable[[], Any]:
    """Return what each worker calls, after the fork, to build its Flask application."""

    def build() -> Any:
        from numaflow_rdma.webhook.app import create_app
        from numaflow_rdma.webhook.nad import (
            CachedNadResolver,
            fixed_resource_name,
            kubernetes_fetch,
        )
        from numaflow_rdma.webhook.server import serving_certificate_is_valid

        if args.resource_name:
            resolve = fixed_resource_name(args.resource_name)
        else:
            fetch = kubernetes_fetch(_api_client(args.kubeconfig), timeout=args.api_timeout)
            resolve = CachedNadResolver(fetch, ttl=args.nad_cache_ttl)
        return create_app(settings, resolve, is_ready=serving_certificate_is_valid)

    return build


def run(args: argparse.Namespace) -> int:
    """Check the configuration, then serve until SIGTERM or SIGINT."""
    settings = _settings(args)
    _check_serving(args)
    if not args.resource_name:
        _api_client(args.kubeconfig).close()

    # The workers' metrics are summed through files. prometheus_client reads
    # this variable when it is first imported, which happens in the workers.
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="numaflow-rdma-webhook-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

    from numaflow_rdma.webhook.server import WebhookServer, gunicorn_options

    options = gunicorn_options(
        bind_address=args.bind_address,
        port=args.port,
        certificate_path=Path(args.tls_cert_file),
        key_path=Path(args.tls_key_file),
        workers=args.workers,
        threads=args.threads,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    logger.info(
        "Starting the webhook.",
        extra={
            "network": settings.network,
            "interface": settings.interface,
            "resource": args.resource_name or "(from the NetworkAttachmentDefinition)",
            "zone": settings.zone,
            "transport_port": settings.transport_port,
            "workers": args.workers,
        },
    )
    master_pid = os.getpid()
    try:
        # gunicorn ends the master and each forked worker with SystemExit, so
        # this block also runs in workers, which must not clean up.
        WebhookServer(_app_factory(args, settings), options).run()
    finally:
        if os.getpid() == master_pid:
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)
            logger.info("The webhook stopped.")
    return 0
