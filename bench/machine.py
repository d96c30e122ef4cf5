"""The machine, software versions, command line and date a suite run had, for the page."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT

PACKAGES = (
    "numaflow-rdma",
    "numpy",
    "ucxx-cu12",
    "libucx-cu12",
    "nats-py",
    "flask",
    "gunicorn",
    "kubernetes",
    "etcd-sdk-python",
    "dnspython",
    "matplotlib",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _operating_system() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _git_commit() -> str:
    if shutil.which("git") is None:
        return "unknown"
    result = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return "unknown"
    dirty = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def _package_versions() -> dict[str, str]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _program_versions() -> dict[str, str]:
    from numaflow_rdma.controlplane import binaries

    return {name: program.version for name, program in binaries.PROGRAMS.items()}


def _gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    result = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def describe(argv: list[str] | None = None) -> dict[str, Any]:
    """Return the machine, versions, command line and start time of this run."""
    arguments = sys.argv if argv is None else argv
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench " + shlex.join(arguments[1:]) if arguments else "",
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count() or 0,
        "memory_bytes": _memory_bytes(),
        "operating_system": _operating_system(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "packages": _package_versions(),
        "programs": _program_versions(),
        "gpus": _gpus(),
        "load_average": list(os.getloadavg()),
    }
