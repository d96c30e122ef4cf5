"""Command-line options that can also be set through environment variables.

Every option of a subcommand has a matching environment variable, so the same
setting can come from a flag on a workstation or from a Deployment's `env` in a
cluster. The variable is ``NUMAFLOW_RDMA_<SUBCOMMAND>_<OPTION>``: the option
``--etcd-endpoints`` of ``numaflow-rdma dnssync`` is read from
``NUMAFLOW_RDMA_DNSSYNC_ETCD_ENDPOINTS``. A flag given on the command line
wins over the variable, and the variable wins over the default. A variable
that is empty counts as unset. The subcommand
is part of the name so these variables never collide with the
``NUMAFLOW_RDMA_*`` variables the webhook sets in UDF containers.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from numaflow_rdma import names

ENV_PREFIX = "NUMAFLOW_RDMA_"

T = TypeVar("T")

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})
# Descriptions, singular and plural, of the values that options of these
# types expect, for the error about an invalid environment variable.
def finite_float(text: str) -> float:
    """Parse a finite number. Plain ``float`` also accepts inf and nan."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


_TYPE_DESCRIPTIONS: dict[Callable[[str], Any], tuple[str, str]] = {
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    finite_float: ("a number", "numbers"),
}

# Kubernetes object names: RFC 1123 labels (namespaces) and subdomains
# (ConfigMaps), as k8s.io/apimachinery's IsDNS1123Label and IsDNS1123Subdomain
# check them.
MAX_DNS_LABEL_LENGTH = names.MAX_LABEL_LENGTH
MAX_DNS_SUBDOMAIN_LENGTH = names.MAX_NAME_LENGTH
# A flag as errors name it: "invalid --days 0".
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_DNS_LABEL_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL_CHARACTER = re.compile(r"[-a-z0-9]")


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
    raise ConfigError(
        f"invalid boolean {text!r} in {source}: expected true or false "
        "(also accepted: 1, yes, on, 0, no, off)"
    )


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
    default_help: str | None = None,
) -> None:
    """Add ``flag`` to ``parser`` with its environment variable as the default source.

    ``multiple`` options take a comma-separated list and produce a list.
    The help text gets the variable's name and the default appended.
    ``default_help`` describes a default that is worked out at run time.
    """
    variable = env_name(command, flag)
    value = default
    if type is float:
        type = finite_float
    raw = _variable(variable)
    if raw is not None:
        value = _parse_environment(variable, raw, type, multiple, default)
        if choices is not None and not multiple and value not in choices:
            raise ConfigError(
                f"invalid value {raw!r} in ${variable}: expected one of {', '.join(map(str, choices))}"
            )
    shown_default = default_help if default_help is not None else _shown(default)
    full_help = f"{help} (env {variable}"
    full_help += f"; default {shown_default})" if shown_default not in (None, "", []) else ")"
    parser.add_argument(
        flag,
        default=value,
        type=_list_converter(type) if multiple else type,
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
    raw = _variable(variable)
    value = parse_bool(raw, source=f"${variable}") if raw is not None else default
    parser.add_argument(
        flag,
        action=argparse.BooleanOptionalAction,
        default=value,
        help=f"{help} (env {variable}; default {'true' if default else 'false'})",
    )


def _variable(name: str) -> str | None:
    """Return the environment variable ``name``, or None when it is unset or empty.

    Kubernetes writes an env entry without a value as an empty string.
    """
    raw = os.environ.get(name)
    return raw if raw is not None and raw.strip() else None


def _shown(default: Any) -> Any:
    """Return ``default`` as --help shows it: lists comma-separated, 60.0 as 60."""
    if isinstance(default, list):
        return ",".join(map(str, default))
    if isinstance(default, float):
        return f"{default:g}"
    return default


def name_sources(message: str, command: str, argv: Sequence[str]) -> str:
    """Return ``message`` with the variables that set the options it names but ``argv`` lacks.

    Checks that run after parsing name the flag (``invalid --days 0``). When
    the value came from ``NUMAFLOW_RDMA_CERTS_DAYS`` instead, the user needs
    that variable's name to correct it.
    """
    on_command_line = {item.split("=", 1)[0] for item in argv if item.startswith("--")}
    variables = []
    for flag in dict.fromkeys(_FLAG.findall(message)):
        variable = env_name(command, flag)
        if flag not in on_command_line and _variable(variable) is not None:
            variables.append(f"{flag} came from ${variable}")
    return f"{message} ({'; '.join(variables)})" if variables else message


def _split_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _list_converter(type: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def convert(text: str) -> list[Any]:
        return [type(item) for item in _split_list(text)]

    # argparse names the type in its error: "invalid comma-separated int value: '1,x'".
    convert.__name__ = f"comma-separated {getattr(type, '__name__', 'list')}"
    return convert


def _parse_environment(
    variable: str, raw: str, type: Callable[[str], Any], multiple: bool, default: Any
) -> Any:
    """Convert the value of ``variable``, or raise ConfigError naming the variable, value and expected type."""
    description = _TYPE_DESCRIPTIONS.get(type)
    items = _split_list(raw) if multiple else [raw]
    values = []
    for item in items:
        try:
            values.append(type(item))
        except (ValueError, TypeError, argparse.ArgumentTypeError) as error:
            # A custom type function states its own rule in its error, but
            # int() and float() only repeat the text they could not parse.
            if description is None or isinstance(error, argparse.ArgumentTypeError):
                reason = f"{item!r}: {error}" if multiple else f"{error}"
            elif multiple:
                reason = (
                    f"{item!r} is not {description[0]}: expected comma-separated {description[1]}"
                )
            else:
                reason = f"expected {description[0]}"
                if default is not None:
                    reason += f", such as the default {default}"
            raise ConfigError(
                f"invalid value {raw!r} in ${variable}: {reason}; correct the variable or unset it"
            ) from error
    return values if multiple else values[0]


def check_option(flag: str, check: Callable[..., T], *values: Any) -> T:
    """Return ``check(*values)``, raising its ValueError again as a ConfigError that names ``flag``."""
    try:
        return check(*values)
    except ValueError as error:
        raise ConfigError(f"argument {flag}: {error}") from error


def validate_ip_address(value: str, flag: str) -> str:
    """Return ``value`` if it is an IPv4 or IPv6 address, or raise ConfigError naming ``flag``."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(
            f"invalid {flag} {value!r}: expected an IPv4 or IPv6 address, such as 0.0.0.0 for "
            "every IPv4 address or :: for every address"
        ) from None
    return value


def validate_dns_label(value: str, flag: str, kind: str) -> str:
    """Return ``value`` if it is an RFC 1123 DNS label, or raise ConfigError naming ``flag``.

    Kubernetes requires such a label for namespace names: at most 63
    lower-case letters, digits and '-', starting and ending with a letter or
    digit. ``kind`` is the kind of name in the singular, such as "namespace name".
    """
    problem = _dns_label_problem(value)
    if problem is not None:
        raise ConfigError(
            f"invalid {flag} {value!r}: {kind}s must be DNS labels (RFC 1123), but {problem}"
        )
    return value


def validate_dns_subdomain(value: str, flag: str, kind: str) -> str:
    """Return ``value`` if it is an RFC 1123 DNS subdomain, or raise ConfigError naming ``flag``.

    Kubernetes requires such a name for most objects, ConfigMaps included:
    DNS labels joined by dots, at most 253 characters in all.
    """
    problem: str | None = None
    if len(value) > MAX_DNS_SUBDOMAIN_LENGTH:
        problem = f"it has {len(value)} characters, at most {MAX_DNS_SUBDOMAIN_LENGTH} are allowed"
    elif not value:
        problem = "it is empty"
    else:
        for label in value.split("."):
            label_problem = _dns_label_problem(label)
            if label_problem is not None:
                problem = f"part {label!r} is invalid: {label_problem}"
                break
    if problem is not None:
        raise ConfigError(
            f"invalid {flag} {value!r}: {kind}s must be DNS subdomains (RFC 1123), but {problem}"
        )
    return value


def _dns_label_problem(label: str) -> str | None:
    if not label:
        return "it is empty"
    if len(label) > MAX_DNS_LABEL_LENGTH:
        return f"it has {len(label)} characters, at most {MAX_DNS_LABEL_LENGTH} are allowed"
    invalid = sorted({char for char in label if not _DNS_LABEL_CHARACTER.fullmatch(char)})
    if invalid:
        listed = " ".join(repr(char) for char in invalid)
        return f"it contains {listed}; use only lower-case letters, digits and '-'"
    if not _DNS_LABEL_PATTERN.fullmatch(label):
        return "it starts or ends with '-'; start and end with a letter or digit"
    return None
