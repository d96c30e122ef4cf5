"""Options and entry point of ``numaflow-rdma demo``.

Only the standard library and the shared modules are imported here, so
``numaflow-rdma --help`` works without the demo's dependencies.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from numaflow_rdma.config import ConfigError, add_flag, add_option
from numaflow_rdma.demo.settings import BACKENDS, LAYOUTS, DemoSettings, SettingsError

COMMAND = "demo"

logger = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    # ArgumentTypeError makes argparse show this text instead of the function's name.
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of 0 or more, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``numaflow-rdma demo``."""
    defaults = DemoSettings()
    workload = parser.add_argument_group("workload")
    add_option(
        workload,
        COMMAND,
        "--duration",
        help="seconds the cameras stream",
        default=defaults.duration,
        type=float,
        metavar="SECONDS",
    )
    add_option(
        workload,
        COMMAND,
        "--frames",
        help="frames each camera sends, instead of --duration; 0 uses --duration",
        default=0,
        type=_positive_int,
        metavar="COUNT",
    )
    add_option(
        workload,
        COMMAND,
        "--fps",
        help="frames per second of each camera",
        default=defaults.fps,
        type=float,
    )
    add_option(
        workload,
        COMMAND,
        "--cameras",
        help="cameras, spread over the decode replicas; each sends 1080p RGB frames",
        default=defaults.cameras,
        type=int,
        metavar="COUNT",
    )
    add_option(
        workload,
        COMMAND,
        "--clip-seconds",
        help="length of one clip of a camera, in seconds; each clip is a stream with its own id "
        "and key, so new clips spread over the infer pods present then; 0 keeps one stream per "
        "camera for the whole run",
        default=defaults.clip_seconds,
        type=float,
        metavar="SECONDS",
    )
    add_option(
        workload,
        COMMAND,
        "--backend",
        help="transport backend of the UDFs: auto picks ucx when ucxx is installed, else tcp",
        default=defaults.backend,
        choices=BACKENDS,
    )

    replacement = parser.add_argument_group("pod replacement")
    add_flag(
        replacement,
        COMMAND,
        "--replace",
        default=defaults.replace,
        help="delete one infer pod midway and create its replacement, as Numaflow would; "
        "--no-replace keeps every infer pod",
    )
    add_option(
        replacement,
        COMMAND,
        "--replace-after",
        help="seconds after streaming starts when the infer pod is deleted",
        default=None,
        default_help="the middle of the clip under way at 40%% of the run",
        type=float,
        metavar="SECONDS",
    )
    add_option(
        replacement,
        COMMAND,
        "--grace-period",
        help="grace period of that deletion, in seconds; 0 deletes the pod at once and kills its "
        "UDF, as 'kubectl delete --force --grace-period=0' does",
        default=defaults.grace_period,
        type=int,
        metavar="SECONDS",
    )
    add_flag(
        replacement,
        COMMAND,
        "--link-down",
        help="take the deleted pod's network link down before deleting it, as a node failure "
        "would: senders notice the loss only by missing heartbeats, and the frames sent "
        "meanwhile are lost and counted as dropped",
    )
    add_option(
        replacement,
        COMMAND,
        "--record-ttl",
        help="TTL of the DNS records dnssync writes, in seconds: the longest a sender waits "
        "before it looks up a vertex again and sees a new pod",
        default=defaults.record_ttl,
        type=int,
        metavar="SECONDS",
    )

    environment = parser.add_argument_group("environment")
    add_option(
        environment,
        COMMAND,
        "--namespace",
        help="namespace of the pipeline's pods",
        default=defaults.namespace,
    )
    add_option(
        environment,
        COMMAND,
        "--layout",
        help="Numaflow pod layout: sidecar (UDF as native sidecar, Kubernetes 1.29 and later) "
        "or legacy",
        default=defaults.layout,
        choices=LAYOUTS,
    )
    add_option(
        environment,
        COMMAND,
        "--work-dir",
        help="folder for logs, certificates and UDF journals; a run-* folder is made in it and "
        "kept",
        default="",
        default_help="a temporary folder, removed at the end",
        metavar="PATH",
    )
    add_flag(
        environment,
        COMMAND,
        "--keep-work-dir",
        help="keep the temporary work folder after the run, to read the logs",
    )
    add_option(
        environment,
        COMMAND,
        "--startup-timeout",
        help="seconds each start-up step may take once the programs are built",
        default=defaults.startup_timeout,
        type=float,
        metavar="SECONDS",
    )


def settings_from_args(args: argparse.Namespace) -> DemoSettings:
    """Build and check the settings from parsed options; raise ConfigError."""
    settings = DemoSettings(
        duration=args.duration,
        frames_per_camera=args.frames or None,
        fps=args.fps,
        cameras=args.cameras,
        clip_seconds=args.clip_seconds,
        backend=args.backend,
        replace=args.replace,
        replace_after=args.replace_after,
        grace_period=args.grace_period,
        link_down=args.link_down,
        record_ttl=args.record_ttl,
        layout=args.layout,
        namespace=args.namespace,
        work_dir=Path(args.work_dir) if args.work_dir else None,
        keep_work_dir=args.keep_work_dir,
        startup_timeout=args.startup_timeout,
    )
    try:
        return settings.validate()
    except SettingsError as error:
        raise ConfigError(str(error)) from error


def run(args: argparse.Namespace) -> int:
    """Run the demo, print its summary, and return 0 when every check passed."""
    settings = settings_from_args(args)

    from numaflow_rdma.demo.progress import DemoError, Progress
    from numaflow_rdma.demo.scenario import run_demo
    from numaflow_rdma.demo.summary import format_summary

    progress = Progress(sys.stderr)
    try:
        result = run_demo(settings, progress)
    except DemoError as error:
        print(error.describe(), file=sys.stderr)
        return 1
    print(format_summary(result), flush=True)
    return 0 if not result.problems() else 1
