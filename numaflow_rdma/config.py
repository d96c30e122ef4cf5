"""Command-line options that can also be set through environment variables.

Every option of a subcommand has a matching environment variable, so the same
setting can come from a flag on a workstation or from a Deployment's `env` in a
cluster. The variable is ``NUMAFLOW_RDMA_<SUBCOMMAND>_<OPTION>``: the option
``--etcd-endpoints`` of ``numaflow-rdma dnssync`` is read from
``NUMAFLOW_RDMA_DNSSYNC_ETCD_ENDPOINTS``. A flag given on the command line
wins over the variable, and the variable wins over the default. The subcommand
is part of the name so these variables never collide with the
``NUMAFLOW_RDMA_*`` variables the webhook sets in UDF containers.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any

ENV_PREFIX = "NUMAFLOW_RDMA_"

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


class ConfigError(ValueError):
    """An option or environment variable with a value that cannot be used."""


def env_name(command: str, flag: str) -> str:
    """Return the environment variable that sets ``flag`` of subcommand ``command``."""
    option = flag.lstrip("-").replace("-", "_").upper()
    return f"{ENV_PREFIX}{command.replace('-', '_').upper()}_{option}"


def parse_bool(text: str, *, source: str) -> bool:
    """Parse the usual spellings of true and false; raise ConfigError naming ``source``."""
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ConfigError(f"invalid boolean {text!r} in {source}: expected true or false")


def add_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    command: str,
    flag: str,
    *,
    help: str,
    default: Any = None,
    type: Callable[[str], Any] = str,
    choices: Sequence[Any] | None = None,
    multiple: bool = False,
    metavar: str | None = None,
) -> None:
    """Add ``flag`` to ``parser`` with its environment variable as the default source.

    ``multiple`` options take a comma-separated list and produce a list.
    The help text gets the variable's name and the default appended.
    """
    variable = env_name(command, flag)
    value = default
    raw = os.environ.get(variable)
    if raw is not None:
        try:
            value = _convert(raw, type, multiple)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"invalid value {raw!r} in ${variable}: {error}") from error
        if choices is not None and not multiple and value not in choices:
            raise ConfigError(
                f"invalid value {raw!r} in ${variable}: expected one of {', '.join(map(str, choices))}"
            )
    shown_default = ",".join(map(str, default)) if isinstance(default, list) else default
    full_help = f"{help} (env {variable}"
    full_help += f"; default {shown_default})" if shown_default not in (None, "", []) else ")"
    parser.add_argument(
        flag,
        default=value,
        type=(lambda text: _convert(text, type, True)) if multiple else type,
        choices=None if multiple else choices,
        help=full_help,
        metavar=metavar,
    )


def add_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    command: str,
    flag: str,
    *,
    help: str,
    default: bool = False,
) -> None:
    """Add ``flag`` and ``--no-<flag>``, set from its variable when that is set, else ``default``."""
    variable = env_name(command, flag)
    raw = os.environ.get(variable)
    value = parse_bool(raw, source=f"${variable}") if raw is not None else default
    parser.add_argument(
        flag,
        action=argparse.BooleanOptionalAction,
        default=value,
        help=f"{help} (env {variable}; default {'true' if default else 'false'})",
    )


def _convert(raw: str, type: Callable[[str], Any], multiple: bool) -> Any:
    if multiple:
        return [type(item.strip()) for item in raw.split(",") if item.strip()]
    return type(raw)
