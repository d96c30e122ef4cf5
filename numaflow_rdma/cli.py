"""The ``numaflow-rdma`` command: one entry point for every component.

Each subcommand lives in the module that implements it and exposes two
functions: ``add_arguments(parser)`` and ``run(args) -> int``. Those modules
import only the standard library at import time, so ``--help`` works on an
install without the component's extras; the component's dependencies are
imported inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from numaflow_rdma import __version__, logs
from numaflow_rdma.config import ConfigError, add_option, name_sources

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subcommand:
    """A subcommand: where it is implemented and how ``--help`` describes it."""

    name: str
    module: str
    summary: str
    description: str


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        name="webhook",
        module="numaflow_rdma.webhook.command",
        summary="serve the mutating admission webhook over HTTPS",
        description=(
            "Serve the mutating admission webhook that adds the RDMA network, the RDMA "
            "device resource, IPC_LOCK and the NUMAFLOW_RDMA_* environment to Numaflow "
            "vertex pods in namespaces labelled numaflow-rdma/inject=enabled."
        ),
    ),
    Subcommand(
        name="dnssync",
        module="numaflow_rdma.dnssync.command",
        summary="keep CoreDNS records in etcd in step with vertex pods",
        description=(
            "Watch Numaflow vertex pods in opted-in namespaces and keep one CoreDNS etcd "
            "record per pod that can take frames, holding the pod's RDMA-network address."
        ),
    ),
    Subcommand(
        name="coredns",
        module="numaflow_rdma.coredns",
        summary="write the CoreDNS configuration that serves the vertex zone",
        description=(
            "Write the Corefile server block that serves the vertex zone from the DNS etcd, "
            "the stanza that makes cluster DNS forward the zone to it, and ConfigMap forms "
            "of both."
        ),
    ),
    Subcommand(
        name="certs",
        module="numaflow_rdma.certs",
        summary="make a CA and a serving certificate for the webhook",
        description=(
            "Make a certificate authority and a serving certificate for the webhook's "
            "Service, for development and clusters without cert-manager, and print the "
            "caBundle for the MutatingWebhookConfiguration."
        ),
    ),
    Subcommand(
        name="demo",
        module="numaflow_rdma.demo.command",
        summary="run the whole system on this machine with real components",
        description=(
            "Start etcd, kube-apiserver, CoreDNS, the webhook and dnssync on loopback, "
            "create the vertex pods of a sample video pipeline, simulate Multus with "
            "network namespaces, and stream frames between UDF processes. Needs root."
        ),
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every subcommand's options."""
    parser = argparse.ArgumentParser(
        prog="numaflow-rdma",
        description=(
            "Direct frame transport between Numaflow vertices over a second RDMA network: "
            "admission webhook, DNS record controller, CoreDNS configuration and a demo."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for subcommand in SUBCOMMANDS:
        subparser = subparsers.add_parser(
            subcommand.name,
            help=subcommand.summary,
            description=subcommand.description,
        )
        group = subparser.add_argument_group("logging")
        add_option(
            group,
            subcommand.name,
            "--log-format",
            help="log line format: text for people, json for log collectors",
            default="text",
            choices=logs.FORMATS,
        )
        add_option(
            group,
            subcommand.name,
            "--log-level",
            help="lowest level that is logged",
            default="info",
            choices=logs.LEVELS,
        )
        module = importlib.import_module(subcommand.module)
        module.add_arguments(subparser)
        subparser.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand named in ``argv`` and return its exit status."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except ConfigError as error:
        print(f"numaflow-rdma: {error}", file=sys.stderr)
        return 2
    logs.configure(args.log_format, args.log_level)
    try:
        status: int = args.run(args)
    except ConfigError as error:
        command_line = sys.argv[1:] if argv is None else argv
        logger.error(
            "Cannot run %s: %s", args.command, name_sources(str(error), args.command, command_line)
        )
        return 2
    except KeyboardInterrupt:
        logger.info("Interrupted.")
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
