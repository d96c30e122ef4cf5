"""Options and entry point of ``numaflow-rdma demo``."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``numaflow-rdma demo``."""


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    raise NotImplementedError("the demo is being written")
