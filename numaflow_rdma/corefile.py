"""Corefile text and ConfigMaps that make CoreDNS answer the vertex zone.

Two CoreDNS configurations are involved. The zone's own CoreDNS serves the
vertex zone from the DNS etcd with the etcd plugin. The cluster's CoreDNS
gets one extra server block, the forwarding stanza, that sends queries for
the zone to the zone's CoreDNS Service. Both are built here as pure
functions of validated settings, so ``numaflow-rdma coredns``, the demo and
the chart tests produce the same text. This module imports only the standard
library.

Facts about CoreDNS v1.12.4 that shape the text:

- The etcd plugin gives every query a 5 s deadline and returns SERVFAIL when
  etcd does not reply in time, and it does not cache. The ``cache`` plugin
  with ``serve_stale`` keeps answering names it has seen during an etcd
  outage.
- ``cache`` stores SERVFAIL answers for 5 s by default, in the same table it
  checks before the table of good answers, and ``serve_stale`` then serves
  that stale SERVFAIL too. So ``servfail 0`` is written whenever
  ``serve_stale`` is, or the first background refresh during an outage
  would replace a good stale answer with SERVFAIL.
- The etcd plugin's SOA has a minimum TTL of 30 s, so a name asked for
  before its first pod is registered would be cached as NXDOMAIN for 30 s.
  The ``denial`` TTL caps that.
- ``forward`` takes IP addresses only, so the stanza names the zone
  Service's cluster IP, not its DNS name.
- Relative ``tls`` paths in the etcd block are joined with the ``root``
  plugin's folder, so only absolute paths are accepted here.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from numaflow_rdma.config import ConfigError
from numaflow_rdma.names import (
    DEFAULT_ETCD_PREFIX,
    DEFAULT_ZONE,
    InvalidNameError,
    validate_label,
    validate_zone,
)

DEFAULT_DNS_PORT = 53
DEFAULT_HEALTH_PORT = 8080
DEFAULT_READY_PORT = 8181
DEFAULT_METRICS_PORT = 9153
DEFAULT_CACHE_TTL = 30
DEFAULT_CACHE_DENIAL_TTL = 5
DEFAULT_SERVE_STALE = 3600
DEFAULT_LAMEDUCK = 5
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_PASSWORD_ENV = "ETCD_PASSWORD"
# The cache plugin's default capacity per table, in responses.
CACHE_CAPACITY = 9984

# The ConfigMaps (namespace, name) with the cluster's CoreDNS configuration in
# kubeadm clusters and in k3s and AKS clusters.
KUBEADM_CONFIGMAP = ("kube-system", "coredns")
KUBEADM_COREFILE_KEY = "Corefile"
CUSTOM_CONFIGMAP = ("kube-system", "coredns-custom")
ZONE_COREFILE_KEY = "Corefile"

# Zones the cluster's CoreDNS answers itself. A stanza for one of them, or
# for a parent such as "local" or "arpa", would take those queries away from
# the kubernetes plugin.
_REVERSE_ZONES = ("in-addr.arpa", "ip6.arpa")
_PASSWORD_ENV_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Characters that end or open a Corefile token.
_COREFILE_SPECIAL = re.compile(r"[\s{}\"'#]")
_CONFIGMAP_KEY_PATTERN = re.compile(r"^[-._a-zA-Z0-9]+$")
_INDENT = "    "
_PLAIN_SCALAR_PATTERN = re.compile(r"^[A-Za-z][-A-Za-z0-9_./]*$")
_PLAIN_KEY_PATTERN = re.compile(r"^[A-Za-z_][-A-Za-z0-9_./]*$")
_YAML_KEYWORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


class CorefileError(ConfigError):
    """A setting that cannot go into a Corefile, or a Corefile that cannot take a stanza.

    ``settings`` names the settings involved as dotted field paths of the
    settings classes, such as ``etcd.endpoints`` or ``health_port``, so a
    command can name its own option for each. It is empty for errors about an
    existing Corefile's text.
    """

    def __init__(self, message: str, *settings: str) -> None:
        super().__init__(message)
        self.settings: tuple[str, ...] = settings


@dataclass(frozen=True)
class EtcdSettings:
    """Connection settings of the zone's CoreDNS for the DNS etcd."""

    endpoints: tuple[str, ...]
    prefix: str = DEFAULT_ETCD_PREFIX
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    # The environment variable of the CoreDNS container that contains the
    # password. The Corefile names it as {$NAME}, so the password never
    # appears in a ConfigMap.
    password_env: str = DEFAULT_PASSWORD_ENV


@dataclass(frozen=True)
class CacheSettings:
    """The ``cache`` plugin's limits, in seconds."""

    success_ttl: int = DEFAULT_CACHE_TTL
    denial_ttl: int = DEFAULT_CACHE_DENIAL_TTL
    # How long an expired answer may still be served; 0 turns serve_stale off.
    serve_stale: int = DEFAULT_SERVE_STALE


@dataclass(frozen=True)
class ListenSettings:
    """Port and addresses a server block listens on. No addresses means every address of the host or pod."""

    port: int = DEFAULT_DNS_PORT
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class ZoneServerSettings:
    """Everything the zone's CoreDNS server block is built from."""

    etcd: EtcdSettings
    zone: str = DEFAULT_ZONE
    listen: ListenSettings = field(default_factory=ListenSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    health_port: int = DEFAULT_HEALTH_PORT
    ready_port: int = DEFAULT_READY_PORT
    metrics_port: int = DEFAULT_METRICS_PORT
    # Seconds the health endpoint keeps answering after SIGTERM, so clients
    # move to another replica first; 0 turns lameduck off.
    lameduck: int = DEFAULT_LAMEDUCK
    log_queries: bool = False
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN


@dataclass(frozen=True)
class ForwardSettings:
    """Everything the forwarding stanza for the cluster's CoreDNS is built from."""

    upstreams: tuple[str, ...]
    zone: str = DEFAULT_ZONE
    listen: ListenSettings = field(default_factory=ListenSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN


# Validation.


def validate_served_zone(zone: str, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> str:
    """Return ``zone`` normalized, or raise CorefileError if cluster DNS cannot hand it off.

    The zone must not be the cluster domain or a reverse zone, nor a parent or
    child of one, because its server block would then take queries that the
    cluster's kubernetes plugin must answer, or never receive its own.
    """
    try:
        normalized = validate_zone(zone)
    except InvalidNameError as error:
        raise CorefileError(str(error), "zone") from error
    cluster = _validate_cluster_domain(cluster_domain)
    for reserved in (cluster, *_REVERSE_ZONES):
        if _is_same_or_below(normalized, reserved) or _is_same_or_below(reserved, normalized):
            settings = ("zone", "cluster_domain") if reserved == cluster else ("zone",)
            raise CorefileError(
                f"invalid zone {zone!r}: it overlaps {reserved!r}, which the cluster's CoreDNS "
                f"answers itself; choose a zone outside it, such as {DEFAULT_ZONE}",
                *settings,
            )
    return normalized


def _validate_cluster_domain(domain: str) -> str:
    try:
        if isinstance(domain, str):
            for label in domain.lower().rstrip(".").split("."):
                validate_label(label, what=f"cluster domain {domain!r}: label")
        return validate_zone(domain)
    except InvalidNameError as error:
        raise CorefileError(str(error), "cluster_domain") from error


def _is_same_or_below(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def validate_port(value: int, what: str, setting: str = "") -> int:
    """Return ``value`` if it is a TCP/UDP port number, or raise CorefileError naming ``setting``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise CorefileError(
            f"invalid {what} {value!r}: expected a port number from 1 to 65535",
            *_named(setting),
        )
    return value


def _validate_seconds(value: int, what: str, setting: str, *, allow_zero: bool) -> int:
    lowest = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        expected = "0 or more seconds" if allow_zero else "a positive number of seconds"
        raise CorefileError(f"invalid {what} {value!r}: expected {expected}", setting)
    return value


def _named(setting: str) -> tuple[str, ...]:
    return (setting,) if setting else ()


def validate_etcd_endpoint(endpoint: str) -> str:
    """Return ``endpoint`` without a trailing slash if it is an http(s)://host[:port] URL."""
    text = endpoint.strip()
    example = "http://numaflow-rdma-etcd:2379"
    setting = "etcd.endpoints"
    if not text or _COREFILE_SPECIAL.search(text):
        raise CorefileError(
            f"invalid etcd endpoint {endpoint!r}: expected a URL without spaces, such as {example}",
            setting,
        )

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise CorefileError(
            f"invalid etcd endpoint {endpoint!r}: the scheme must be http or https, as in {example}",
            setting,
        )
    if parts.username or parts.password:
        raise CorefileError(
            f"invalid etcd endpoint {endpoint!r}: it contains credentials, which belong in "
            "--etcd-username and the password variable instead",
            setting,
        )

    if not parts.hostname:
        raise CorefileError(
            f"invalid etcd endpoint {endpoint!r}: the host is missing, as in {example}", setting
        )
    try:
        port = parts.port
    except ValueError as error:
        raise CorefileError(f"invalid etcd endpoint {endpoint!r}: {error}", setting) from error
    if port == 0:
        raise CorefileError(
            f"invalid etcd endpoint {endpoint!r}: port 0 cannot be dialled", setting
        )

    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise CorefileError(
            f"invalid etcd endpoint {endpoint!r}: etcd endpoints have no path or query, as in {example}",
            setting,
        )
    return text.rstrip("/")


def validate_etcd_prefix(prefix: str) -> str:
    """Return the etcd key prefix without a trailing slash, such as ``/skydns``."""
    stripped = prefix.rstrip("/") if isinstance(prefix, str) else ""
    if not stripped.startswith("/") or _COREFILE_SPECIAL.search(stripped) or "//" in stripped:
        raise CorefileError(
            f"invalid etcd prefix {prefix!r}: expected an absolute key path without spaces, "
            f"such as {DEFAULT_ETCD_PREFIX}",
            "etcd.prefix",
        )
    return stripped


def validate_file_path(path: str, what: str, setting: str = "") -> str:
    """Return ``path`` if it is absolute and one Corefile token.

    The path is where the file is inside the CoreDNS container, so it is not
    checked on this machine.
    """
    if not path or not path.startswith("/") or _COREFILE_SPECIAL.search(path):
        raise CorefileError(
            f"invalid {what} {path!r}: expected an absolute path without spaces or quotes, "
            "as the file is mounted in the CoreDNS container",
            *_named(setting),
        )
    return path


def _validate_etcd(settings: EtcdSettings) -> EtcdSettings:
    if not settings.endpoints:
        raise CorefileError(
            "missing etcd endpoints: give at least one, such as http://numaflow-rdma-etcd:2379",
            "etcd.endpoints",
        )
    endpoints = tuple(validate_etcd_endpoint(endpoint) for endpoint in settings.endpoints)
    schemes = {urlsplit(endpoint).scheme for endpoint in endpoints}
    if len(schemes) > 1:
        raise CorefileError(
            f"invalid etcd endpoints {', '.join(endpoints)}: mixing http and https is not "
            "supported, because one TLS setting applies to every endpoint",
            "etcd.endpoints",
        )
    uses_tls = schemes == {"https"}
    tls_files = {
        setting: path
        for setting, path in (
            ("etcd.ca_file", settings.ca_file),
            ("etcd.cert_file", settings.cert_file),
            ("etcd.key_file", settings.key_file),
        )
        if path
    }
    if tls_files and not uses_tls:
        raise CorefileError(
            f"etcd TLS files are set ({', '.join(map(repr, tls_files.values()))}) but the "
            f"endpoints {', '.join(endpoints)} use http://: use https:// endpoints, "
            "or leave out the CA, certificate and key files",
            "etcd.endpoints",
            *tls_files,
        )
    if bool(settings.cert_file) != bool(settings.key_file):
        raise CorefileError(
            "the etcd client certificate and key must be given together: "
            f"got certificate {settings.cert_file!r} and key {settings.key_file!r}",
            "etcd.cert_file",
            "etcd.key_file",
        )
    if settings.username is not None and (
        not settings.username or _COREFILE_SPECIAL.search(settings.username)
    ):
        raise CorefileError(
            f"invalid etcd username {settings.username!r}: expected a non-empty name "
            "without spaces, braces or quotes",
            "etcd.username",
        )
    if not _PASSWORD_ENV_PATTERN.fullmatch(settings.password_env):
        raise CorefileError(
            f"invalid password variable {settings.password_env!r}: expected an environment "
            f"variable name such as {DEFAULT_PASSWORD_ENV}",
            "etcd.password_env",
        )
    return EtcdSettings(
        endpoints=endpoints,
        prefix=validate_etcd_prefix(settings.prefix),
        ca_file=(
            validate_file_path(settings.ca_file, "etcd CA file", "etcd.ca_file")
            if settings.ca_file
            else None
        ),
        cert_file=(
            validate_file_path(settings.cert_file, "etcd certificate file", "etcd.cert_file")
            if settings.cert_file
            else None
        ),
        key_file=(
            validate_file_path(settings.key_file, "etcd key file", "etcd.key_file")
            if settings.key_file
            else None
        ),
        username=settings.username,
        password_env=settings.password_env,
    )


def _validate_cache(settings: CacheSettings) -> CacheSettings:
    _validate_seconds(settings.success_ttl, "cache TTL", "cache.success_ttl", allow_zero=False)
    _validate_seconds(settings.denial_ttl, "cache denial TTL", "cache.denial_ttl", allow_zero=False)
    _validate_seconds(
        settings.serve_stale, "serve_stale duration", "cache.serve_stale", allow_zero=True
    )
    return settings


def _validate_listen(settings: ListenSettings) -> ListenSettings:
    validate_port(settings.port, "DNS port", "listen.port")
    addresses = []
    for address in settings.addresses:
        try:
            addresses.append(str(ipaddress.ip_address(address.strip())))
        except ValueError as error:
            raise CorefileError(
                f"invalid listen address {address!r}: expected an IP address such as 127.0.0.1",
                "listen.addresses",
            ) from error
    return ListenSettings(port=settings.port, addresses=tuple(addresses))


def format_upstream(upstream: str) -> str:
    """Return ``upstream`` as the ``forward`` plugin takes it: ``IP:port``, IPv6 in brackets.

    ``upstream`` is an IP address with an optional port, such as ``10.96.0.53``,
    ``10.96.0.53:1053`` or ``[fd00::35]:53``. Port 53 is added when it is missing.
    """
    text = upstream.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError as error:
        raise CorefileError(
            f"invalid upstream {upstream!r}: expected the IP address of the zone's CoreDNS "
            "Service, such as 10.96.0.53 or 10.96.0.53:53, because forward does not resolve names",
            "upstreams",
        ) from error
    try:
        port = int(port_text) if port_text else DEFAULT_DNS_PORT
    except ValueError as error:
        raise CorefileError(
            f"invalid upstream {upstream!r}: the port is not a number", "upstreams"
        ) from error
    validate_port(port, f"port of upstream {upstream!r}", "upstreams")
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"{shown}:{port}"


# Server blocks.


def _http_address(listen: ListenSettings, port: int) -> str:
    if not listen.addresses:
        return f":{port}"
    address = ipaddress.ip_address(listen.addresses[0])
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"{host}:{port}"


def _cache_lines(cache: CacheSettings) -> list[str]:
    lines = [
        "cache {",
        f"{_INDENT}success {CACHE_CAPACITY} {cache.success_ttl}",
        f"{_INDENT}denial {CACHE_CAPACITY} {cache.denial_ttl}",
    ]
    if cache.serve_stale:
        lines += [
            f"{_INDENT}serve_stale {cache.serve_stale}s immediate",
            f"{_INDENT}servfail 0",
        ]
    lines.append("}")
    return lines


def _etcd_lines(etcd: EtcdSettings) -> list[str]:
    lines = [
        "etcd {",
        f"{_INDENT}path {etcd.prefix}",
        f"{_INDENT}endpoint {' '.join(etcd.endpoints)}",
    ]
    if urlsplit(etcd.endpoints[0]).scheme == "https":
        # CoreDNS reads 2 arguments as certificate and key, 1 as the CA, and
        # none as "verify with the system CAs".
        files = [path for path in (etcd.cert_file, etcd.key_file, etcd.ca_file) if path]
        lines.append(f"{_INDENT}{' '.join(['tls', *files])}")
    if etcd.username:
        lines.append(f"{_INDENT}credentials {etcd.username} {{${etcd.password_env}}}")
    lines.append("}")
    return lines


def _server_block(zone: str, listen: ListenSettings, body: Sequence[str]) -> str:
    lines = [f"{zone}:{listen.port} {{"]
    if listen.addresses:
        lines.append(f"{_INDENT}bind {' '.join(listen.addresses)}")
    lines += [f"{_INDENT}{line}" for line in body]
    lines.append("}")
    return "\n".join(lines) + "\n"


def zone_server_block(settings: ZoneServerSettings) -> str:
    """Build the Corefile server block that serves the zone from the DNS etcd.

    Raises CorefileError, naming the setting, when a setting is invalid.
    """
    zone = validate_served_zone(settings.zone, settings.cluster_domain)
    etcd = _validate_etcd(settings.etcd)
    cache = _validate_cache(settings.cache)
    listen = _validate_listen(settings.listen)
    side_ports = (
        (settings.health_port, "health port", "health_port"),
        (settings.ready_port, "ready port", "ready_port"),
        (settings.metrics_port, "metrics port", "metrics_port"),
    )
    for port, what, setting in side_ports:
        validate_port(port, what, setting)
    _check_distinct_ports((listen.port, "DNS port", "listen.port"), *side_ports)
    _validate_seconds(settings.lameduck, "lameduck duration", "lameduck", allow_zero=True)

    body = ["errors"]
    if settings.log_queries:
        body.append("log")
    health = f"health {_http_address(listen, settings.health_port)}"
    if settings.lameduck:
        body += [f"{health} {{", f"{_INDENT}lameduck {settings.lameduck}s", "}"]
    else:
        body.append(health)
    body += [
        f"ready {_http_address(listen, settings.ready_port)}",
        f"prometheus {_http_address(listen, settings.metrics_port)}",
        *_cache_lines(cache),
        *_etcd_lines(etcd),
    ]
    return _server_block(zone, listen, body)


def _check_distinct_ports(*ports: tuple[int, str, str]) -> None:
    """Raise CorefileError naming both settings when two servers of one block share a port."""
    seen: dict[int, tuple[str, str]] = {}
    for port, what, setting in ports:
        if port in seen:
            other_what, other_setting = seen[port]
            raise CorefileError(
                f"invalid {what} {port}: the {other_what} is {port} too, and CoreDNS cannot "
                "start two servers on one port; give each a port of its own",
                other_setting,
                setting,
            )
        seen[port] = (what, setting)


def forward_server_block(settings: ForwardSettings) -> str:
    """Build the stanza that makes the cluster's CoreDNS send the zone to the zone's CoreDNS."""
    zone = validate_served_zone(settings.zone, settings.cluster_domain)
    if not settings.upstreams:
        raise CorefileError(
            "missing upstream: give the cluster IP of the zone's CoreDNS Service, "
            "such as 10.96.0.53",
            "upstreams",
        )
    upstreams = [format_upstream(upstream) for upstream in settings.upstreams]
    cache = _validate_cache(settings.cache)
    listen = _validate_listen(settings.listen)
    body = ["errors", *_cache_lines(cache), f"forward . {' '.join(upstreams)}"]
    return _server_block(zone, listen, body)


# Merging a stanza into an existing Corefile.


def _markers(zone: str) -> tuple[str, str]:
    return f"# BEGIN numaflow-rdma zone {zone}", f"# END numaflow-rdma zone {zone}"


def remove_server_block(corefile: str, zone: str) -> str:
    """Return ``corefile`` without the marked stanza for ``zone``, unchanged if there is none.

    Raises CorefileError when a begin marker has no end marker, because then
    the end of the stanza is unknown and a guess could cut the user's blocks.
    """
    begin, end = _markers(validate_zone(zone))
    lines = corefile.splitlines()
    kept: list[str] = []
    index = 0
    while index < len(lines):
        if lines[index].strip() != begin:
            kept.append(lines[index])
            index += 1
            continue
        try:
            stop = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == end)
        except StopIteration:
            raise CorefileError(
                f"the Corefile has the line {begin!r} but no {end!r} after it: "
                "restore the end marker or remove the stanza by hand"
            ) from None
        index = stop + 1
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""


def merge_server_block(corefile: str, block: str, zone: str) -> str:
    """Return ``corefile`` with ``block`` for ``zone`` appended between marker comments.

    A stanza for the same zone added earlier is replaced, so merging again with
    the same block returns the same text.
    """
    begin, end = _markers(validate_zone(zone))
    remaining = remove_server_block(corefile, zone)
    if _has_unmarked_block(remaining, zone):
        raise CorefileError(
            f"the Corefile already has a server block for {zone} that numaflow-rdma did not "
            "write: remove it first, or the two blocks would conflict"
        )
    separator = "\n" if remaining else ""
    return f"{remaining}{separator}{begin}\n{block.rstrip()}\n{end}\n"


def _has_unmarked_block(corefile: str, zone: str) -> bool:
    normalized = validate_zone(zone)
    for line in corefile.splitlines():
        stripped = line.split("#", 1)[0].strip()
        if not stripped.endswith("{") or line.startswith((" ", "\t")):
            continue
        for key in stripped.rstrip("{").split():
            name = key.split("://")[-1].rsplit(":", 1)[0].rstrip(".").lower()
            if name == normalized:
                return True
    return False


# ConfigMaps.


def configmap(
    name: str,
    namespace: str,
    data: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build a ConfigMap manifest as a dict."""
    for key in data:
        if not _CONFIGMAP_KEY_PATTERN.fullmatch(key):
            raise CorefileError(
                f"invalid ConfigMap key {key!r}: use only letters, digits, '-', '_' and '.'"
            )
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}


def custom_configmap_key(zone: str) -> str:
    """Return the ``coredns-custom`` key of the zone's stanza, ending in ``.server`` as k3s and AKS import."""
    return f"numaflow-rdma.{validate_zone(zone)}.server"


def to_yaml(manifest: Mapping[str, Any]) -> str:
    """Write a manifest of nested mappings, strings, numbers and booleans as YAML.

    Multi-line strings become literal blocks, so a Corefile stays readable.
    Every other scalar is written as JSON, which YAML reads unchanged.
    """
    return "\n".join(_yaml_lines(manifest, 0)) + "\n"


def _yaml_lines(value: Mapping[str, Any], depth: int) -> list[str]:
    indent = "  " * depth
    lines: list[str] = []
    for key, item in value.items():
        label = f"{indent}{json.dumps(str(key)) if _needs_quotes(str(key)) else key}:"
        if isinstance(item, Mapping):
            lines += [f"{label} {{}}"] if not item else [label, *_yaml_lines(item, depth + 1)]
        elif isinstance(item, str) and "\n" in item.rstrip("\n"):
            lines += _literal_block(label, item, indent + "  ")
        elif isinstance(item, str) and _is_plain_scalar(item):
            lines.append(f"{label} {item}")
        elif isinstance(item, (str, int, float, bool)) or item is None:
            lines.append(f"{label} {json.dumps(item)}")
        else:
            raise TypeError(f"cannot write {type(item).__name__} at key {key!r} as YAML")
    return lines


def _is_plain_scalar(text: str) -> bool:
    # A plain YAML scalar that no YAML 1.1 or 1.2 reader takes for a boolean or null.
    return bool(_PLAIN_SCALAR_PATTERN.fullmatch(text)) and text.lower() not in _YAML_KEYWORDS


def _needs_quotes(key: str) -> bool:
    return not _PLAIN_KEY_PATTERN.fullmatch(key) or key.lower() in _YAML_KEYWORDS


def _literal_block(label: str, text: str, indent: str) -> list[str]:
    # "|" keeps one final line break and "|-" none. Other endings need the
    # JSON form, which is also valid YAML.
    if text.endswith("\n\n") or "\r" in text or text[:1] in (" ", "\t"):
        return [f"{label} {json.dumps(text)}"]
    header = "|" if text.endswith("\n") else "|-"
    body = [f"{indent}{line}" if line else "" for line in text.rstrip("\n").split("\n")]
    return [f"{label} {header}", *body]
