"""``numaflow-rdma coredns``: write or apply the CoreDNS configuration of the vertex zone.

The text itself comes from ``numaflow_rdma.corefile``. This module turns
command-line options into its settings and writes one of five forms. With
``--apply`` it writes the cluster DNS stanza into the cluster's CoreDNS
ConfigMap instead, which is what the chart's optional hook Jobs run.

Forms:

- ``zone``: the Corefile server block of the zone's CoreDNS.
- ``zone-configmap``: that Corefile in a ConfigMap, key ``Corefile``.
- ``forward``: the stanza that makes the cluster's CoreDNS forward the zone.
- ``forward-kubeadm``: the kubeadm ``kube-system/coredns`` ConfigMap, that
  is the cluster's current Corefile with the stanza merged in.
- ``forward-custom``: the ``kube-system/coredns-custom`` ConfigMap whose
  ``*.server`` keys k3s and AKS import as extra server blocks.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from numaflow_rdma import corefile
from numaflow_rdma.config import (
    ConfigError,
    add_flag,
    add_option,
    validate_dns_label,
    validate_dns_subdomain,
)
from numaflow_rdma.corefile import (
    CacheSettings,
    CorefileError,
    EtcdSettings,
    ForwardSettings,
    ListenSettings,
    ZoneServerSettings,
)
from numaflow_rdma.names import DEFAULT_ETCD_PREFIX, DEFAULT_ZONE

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

logger = logging.getLogger(__name__)

COMMAND = "coredns"
FORMS = ("zone", "zone-configmap", "forward", "forward-kubeadm", "forward-custom")
FIELD_MANAGER = "numaflow-rdma-coredns"
# Attempts at the read-merge-replace of the kubeadm ConfigMap when another
# writer changes it in between (HTTP 409).
_CONFLICT_ATTEMPTS = 5
# The option that sets each field of the corefile settings classes, for
# naming it in a CorefileError.
OPTION_OF_SETTING: dict[str, str] = {
    "zone": "--zone",
    "cluster_domain": "--cluster-domain",
    "listen.port": "--port",
    "listen.addresses": "--listen-addresses",
    "etcd.endpoints": "--etcd-endpoints",
    "etcd.prefix": "--etcd-prefix",
    "etcd.ca_file": "--etcd-ca-file",
    "etcd.cert_file": "--etcd-cert-file",
    "etcd.key_file": "--etcd-key-file",
    "etcd.username": "--etcd-username",
    "etcd.password_env": "--etcd-password-env",
    "health_port": "--health-port",
    "ready_port": "--ready-port",
    "metrics_port": "--metrics-port",
    "lameduck": "--lameduck",
    "cache.success_ttl": "--cache-ttl",
    "cache.denial_ttl": "--cache-denial-ttl",
    "cache.serve_stale": "--serve-stale",
    "upstreams": "--upstreams",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``numaflow-rdma coredns``."""
    output = parser.add_argument_group("output")
    add_option(
        output,
        COMMAND,
        "--form",
        help=(
            "what to write: zone (Corefile of the zone's CoreDNS), zone-configmap, forward "
            "(stanza for the cluster's CoreDNS), forward-kubeadm (kube-system/coredns ConfigMap "
            "with the stanza merged in) or forward-custom (k3s and AKS coredns-custom ConfigMap)"
        ),
        default="zone",
        choices=FORMS,
    )
    add_option(
        output,
        COMMAND,
        "--output",
        help="file to write, or - for standard output",
        default="-",
        metavar="PATH",
    )
    add_option(
        output,
        COMMAND,
        "--namespace",
        help="namespace of the zone-configmap form's ConfigMap",
        default="numaflow-rdma",
        metavar="NAMESPACE",
    )
    add_option(
        output,
        COMMAND,
        "--configmap-name",
        help="name of the zone-configmap form's ConfigMap",
        default="numaflow-rdma-coredns",
        metavar="NAME",
    )

    zone = parser.add_argument_group("zone")
    add_option(
        zone,
        COMMAND,
        "--zone",
        help="DNS zone of the vertex names",
        default=DEFAULT_ZONE,
        metavar="ZONE",
    )
    add_option(
        zone,
        COMMAND,
        "--cluster-domain",
        help="the cluster's own DNS domain, which the zone must not overlap",
        default=corefile.DEFAULT_CLUSTER_DOMAIN,
        metavar="DOMAIN",
    )
    add_option(
        zone,
        COMMAND,
        "--port",
        help="DNS port of the server block",
        default=corefile.DEFAULT_DNS_PORT,
        type=int,
        metavar="PORT",
    )
    add_option(
        zone,
        COMMAND,
        "--listen-addresses",
        help="IP addresses the server block binds to, comma-separated; empty binds to all",
        default=[],
        multiple=True,
        metavar="ADDRESSES",
    )
    _add_zone_server_options(parser)
    _add_forward_options(parser)


def _add_zone_server_options(parser: argparse.ArgumentParser) -> None:
    etcd = parser.add_argument_group("zone server: DNS etcd")
    add_option(
        etcd,
        COMMAND,
        "--etcd-endpoints",
        help="client URLs of the DNS etcd, comma-separated, all http:// or all https://; "
        "required by the zone and zone-configmap forms",
        default=[],
        multiple=True,
        metavar="URLS",
    )
    add_option(
        etcd,
        COMMAND,
        "--etcd-prefix",
        help="etcd key prefix of the records",
        default=DEFAULT_ETCD_PREFIX,
        metavar="PREFIX",
    )
    add_option(
        etcd,
        COMMAND,
        "--etcd-ca-file",
        help="CA certificate path inside the CoreDNS container",
        metavar="PATH",
    )
    add_option(
        etcd,
        COMMAND,
        "--etcd-cert-file",
        help="client certificate path inside the CoreDNS container",
        metavar="PATH",
    )
    add_option(
        etcd,
        COMMAND,
        "--etcd-key-file",
        help="client key path inside the CoreDNS container",
        metavar="PATH",
    )
    add_option(
        etcd,
        COMMAND,
        "--etcd-username",
        help="etcd user name; empty for no authentication",
        metavar="NAME",
    )
    add_option(
        etcd,
        COMMAND,
        "--etcd-password-env",
        help="environment variable of the CoreDNS container that holds the etcd password",
        default=corefile.DEFAULT_PASSWORD_ENV,
        metavar="VARIABLE",
    )

    server = parser.add_argument_group("zone server: plugins")
    add_option(
        server,
        COMMAND,
        "--health-port",
        help="port of the health plugin's /health",
        default=8080,
        type=int,
        metavar="PORT",
    )
    add_option(
        server,
        COMMAND,
        "--ready-port",
        help="port of the ready plugin's /ready",
        default=8181,
        type=int,
        metavar="PORT",
    )
    add_option(
        server,
        COMMAND,
        "--metrics-port",
        help="port of the prometheus plugin's /metrics",
        default=9153,
        type=int,
        metavar="PORT",
    )
    add_option(
        server,
        COMMAND,
        "--lameduck",
        help="seconds /health keeps answering after shutdown begins; 0 turns it off",
        default=corefile.DEFAULT_LAMEDUCK,
        type=int,
        metavar="SECONDS",
    )
    add_flag(server, COMMAND, "--log-queries", help="log every query with the log plugin")

    cache = parser.add_argument_group("cache (both server blocks)")
    add_option(
        cache,
        COMMAND,
        "--cache-ttl",
        help="maximum seconds an answer is cached",
        default=corefile.DEFAULT_CACHE_TTL,
        type=int,
        metavar="SECONDS",
    )
    add_option(
        cache,
        COMMAND,
        "--cache-denial-ttl",
        help="maximum seconds an NXDOMAIN or empty answer is cached",
        default=corefile.DEFAULT_CACHE_DENIAL_TTL,
        type=int,
        metavar="SECONDS",
    )
    add_option(
        cache,
        COMMAND,
        "--serve-stale",
        help="seconds an expired answer is still served while etcd or the zone server fails; 0 turns it off",
        default=corefile.DEFAULT_SERVE_STALE,
        type=int,
        metavar="SECONDS",
    )


def _add_forward_options(parser: argparse.ArgumentParser) -> None:
    forward = parser.add_argument_group("forwarding stanza")
    add_option(
        forward,
        COMMAND,
        "--upstreams",
        help="IP[:port] of the zone's CoreDNS Service, comma-separated; port 53 if left out",
        default=[],
        multiple=True,
        metavar="ADDRESSES",
    )
    add_option(
        forward,
        COMMAND,
        "--upstream-service",
        help="the zone's CoreDNS Service, whose cluster IP is read from the API",
        metavar="NAMESPACE/NAME",
    )
    add_option(
        forward,
        COMMAND,
        "--upstream-port",
        help="port of the zone's CoreDNS Service, used with --upstream-service",
        default=53,
        type=int,
        metavar="PORT",
    )
    add_option(
        forward,
        COMMAND,
        "--cluster-corefile",
        help="file with the cluster's current Corefile, for the forward-kubeadm form without --apply",
        metavar="PATH",
    )
    add_option(
        forward,
        COMMAND,
        "--cluster-dns-configmap",
        help=(
            "the cluster's CoreDNS ConfigMap; default kube-system/coredns for "
            "forward-kubeadm and kube-system/coredns-custom for forward-custom"
        ),
        metavar="NAMESPACE/NAME",
    )

    cluster = parser.add_argument_group("writing to the cluster")
    add_flag(
        cluster,
        COMMAND,
        "--apply",
        help="write the forward-kubeadm or forward-custom form into the cluster instead of printing it",
    )
    add_flag(
        cluster, COMMAND, "--remove", help="with --apply, remove the stanza instead of adding it"
    )
    add_option(
        cluster,
        COMMAND,
        "--kubeconfig",
        help="kubeconfig file; in-cluster configuration if empty",
        metavar="PATH",
    )


# Settings from options.


def _cache_settings(args: argparse.Namespace) -> CacheSettings:
    return CacheSettings(
        success_ttl=args.cache_ttl, denial_ttl=args.cache_denial_ttl, serve_stale=args.serve_stale
    )


def _listen_settings(args: argparse.Namespace) -> ListenSettings:
    return ListenSettings(port=args.port, addresses=tuple(args.listen_addresses))


def zone_settings_from_args(args: argparse.Namespace) -> ZoneServerSettings:
    """Build the zone server's settings from parsed options."""
    return ZoneServerSettings(
        etcd=EtcdSettings(
            endpoints=tuple(args.etcd_endpoints),
            prefix=args.etcd_prefix,
            ca_file=args.etcd_ca_file or None,
            cert_file=args.etcd_cert_file or None,
            key_file=args.etcd_key_file or None,
            username=args.etcd_username or None,
            password_env=args.etcd_password_env,
        ),
        zone=args.zone,
        listen=_listen_settings(args),
        cache=_cache_settings(args),
        health_port=args.health_port,
        ready_port=args.ready_port,
        metrics_port=args.metrics_port,
        lameduck=args.lameduck,
        log_queries=args.log_queries,
        cluster_domain=args.cluster_domain,
    )


def forward_settings_from_args(args: argparse.Namespace, upstreams: list[str]) -> ForwardSettings:
    """Build the forwarding stanza's settings from parsed options and resolved upstreams."""
    return ForwardSettings(
        upstreams=tuple(upstreams),
        zone=args.zone,
        listen=_listen_settings(args),
        cache=_cache_settings(args),
        cluster_domain=args.cluster_domain,
    )


def split_object_name(value: str, what: str) -> tuple[str, str]:
    """Split ``NAMESPACE/NAME`` into its parts.

    Raises ConfigError naming ``what`` unless both parts are valid Kubernetes names.
    """
    namespace, separator, name = value.partition("/")
    if not separator or not namespace or not name or "/" in name:
        raise ConfigError(
            f"invalid {what} {value!r}: expected NAMESPACE/NAME, such as kube-system/coredns"
        )
    validate_dns_label(namespace, f"namespace in {what}", "namespace name")
    validate_dns_subdomain(name, f"name in {what}", "object name")
    return namespace, name


def name_options(error: CorefileError) -> ConfigError:
    """Build a ConfigError that starts with the options of ``error``'s settings, as argparse's do.

    Returns ``error`` itself when it names no setting, as for a Corefile that
    cannot take the stanza.
    """
    options = [OPTION_OF_SETTING[name] for name in error.settings if name in OPTION_OF_SETTING]
    if not options:
        return error
    noun = "argument" if len(options) == 1 else "arguments"
    return ConfigError(f"{noun} {', '.join(options)}: {error}")


def _validate_options(args: argparse.Namespace) -> None:
    # Options that no corefile setting covers.
    validate_dns_label(args.namespace, "--namespace", "namespace name")
    validate_dns_subdomain(args.configmap_name, "--configmap-name", "ConfigMap name")
    corefile.validate_port(args.upstream_port, "--upstream-port")


def _cluster_dns_configmap(args: argparse.Namespace) -> tuple[str, str]:
    if args.cluster_dns_configmap:
        return split_object_name(args.cluster_dns_configmap, "--cluster-dns-configmap")
    return (
        corefile.KUBEADM_CONFIGMAP if args.form == "forward-kubeadm" else corefile.CUSTOM_CONFIGMAP
    )


# Rendering.


def render(args: argparse.Namespace, upstreams: list[str], cluster_corefile: str | None) -> str:
    """Return the text of the form named by ``args.form``."""
    if args.form == "zone":
        return corefile.zone_server_block(zone_settings_from_args(args))
    if args.form == "zone-configmap":
        text = corefile.zone_server_block(zone_settings_from_args(args))
        manifest = corefile.configmap(
            args.configmap_name, args.namespace, {corefile.ZONE_COREFILE_KEY: text}
        )
        return corefile.to_yaml(manifest)

    stanza = corefile.forward_server_block(forward_settings_from_args(args, upstreams))
    namespace, name = _cluster_dns_configmap(args)
    if args.form == "forward":
        return stanza
    if args.form == "forward-custom":
        key = corefile.custom_configmap_key(args.zone)
        return corefile.to_yaml(corefile.configmap(name, namespace, {key: stanza}))
    if cluster_corefile is None:
        raise ConfigError(
            "the forward-kubeadm form replaces the cluster's whole Corefile, so it needs the current "
            "one: save it with kubectl -n kube-system get configmap coredns "
            "-o jsonpath='{.data.Corefile}' > Corefile and pass --cluster-corefile Corefile, "
            "or use --apply"
        )
    try:
        merged = corefile.merge_server_block(cluster_corefile, stanza, args.zone)
    except CorefileError as error:
        raise ConfigError(
            f"merging the stanza into --cluster-corefile {args.cluster_corefile!r} failed: {error}"
        ) from error
    return corefile.to_yaml(
        corefile.configmap(name, namespace, {corefile.KUBEADM_COREFILE_KEY: merged})
    )


def _read_cluster_corefile(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"cannot read --cluster-corefile {path!r}: {error.strerror}") from error


def _write_output(text: str, output: str) -> None:
    if output == "-":
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text)
    except OSError as error:
        raise ConfigError(f"cannot write --output {output!r}: {error.strerror}") from error


# Writing into the cluster.


def resolve_service_upstreams(api_client: ApiClient, service: str, port: int) -> list[str]:
    """Return ``IP:port`` for each cluster IP of the Service ``NAMESPACE/NAME``."""
    from kubernetes import client

    namespace, name = split_object_name(service, "--upstream-service")
    try:
        spec = client.CoreV1Api(api_client).read_namespaced_service(name, namespace).spec
    except client.ApiException as error:
        raise ConfigError(
            f"reading Service {service} failed: HTTP {error.status} {error.reason}"
        ) from error
    cluster_ips: list[str] = []
    if spec is not None:
        cluster_ips = list(spec.cluster_ips or []) or [spec.cluster_ip or ""]
    addresses = [ip for ip in cluster_ips if ip and ip != "None"]
    if not addresses:
        raise ConfigError(
            f"Service {service} has no cluster IP (it is headless): give the zone's CoreDNS a "
            "ClusterIP Service, or pass --upstreams"
        )
    return [
        corefile.format_upstream(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}")
        for ip in addresses
    ]


def apply_custom_stanza(
    api_client: ApiClient, namespace: str, name: str, key: str, stanza: str | None
) -> None:
    """Set or, with ``stanza`` None, remove one key of the ``coredns-custom`` ConfigMap.

    Server-side apply under its own field manager leaves the ConfigMap's other
    keys to whoever wrote them, and creates the ConfigMap if it is missing.
    """
    from kubernetes import client

    data = {key: stanza} if stanza is not None else {}
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }
    core = client.CoreV1Api(api_client)
    if stanza is None:
        try:
            core.read_namespaced_config_map(name, namespace)
        except client.ApiException as error:
            if error.status == 404:
                logger.info("ConfigMap %s/%s does not exist; nothing to remove.", namespace, name)
                return
            raise
    core.patch_namespaced_config_map(
        name,
        namespace,
        body,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",
    )


def apply_kubeadm_stanza(
    api_client: ApiClient, namespace: str, name: str, zone: str, stanza: str | None
) -> bool:
    """Merge ``stanza`` into, or with None remove it from, the kubeadm ConfigMap's Corefile.

    Reads the ConfigMap, edits the Corefile between the marker comments, and
    replaces it under the read resourceVersion, retrying when another writer
    got in between. Returns whether the Corefile changed.
    """
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    for attempt in range(1, _CONFLICT_ATTEMPTS + 1):
        try:
            current = core.read_namespaced_config_map(name, namespace)
        except client.ApiException as error:
            raise ConfigError(
                f"reading ConfigMap {namespace}/{name} failed: HTTP {error.status} {error.reason}; "
                "check --cluster-dns-configmap"
            ) from error
        text = (current.data or {}).get(corefile.KUBEADM_COREFILE_KEY)
        if text is None:
            raise ConfigError(
                f"ConfigMap {namespace}/{name} has no {corefile.KUBEADM_COREFILE_KEY} key"
            )
        if stanza is None:
            updated = corefile.remove_server_block(text, zone)
        else:
            updated = corefile.merge_server_block(text, stanza, zone)
        if updated == text:
            return False
        current.data = {**(current.data or {}), corefile.KUBEADM_COREFILE_KEY: updated}
        try:
            core.replace_namespaced_config_map(
                name, namespace, current, field_manager=FIELD_MANAGER
            )
            return True
        except client.ApiException as error:
            if error.status != 409 or attempt == _CONFLICT_ATTEMPTS:
                raise
            logger.warning(
                "Attempt %d/%d to update ConfigMap %s/%s conflicted with another writer; retrying.",
                attempt,
                _CONFLICT_ATTEMPTS,
                namespace,
                name,
            )
            time.sleep(0.2 * attempt)
    return False


def _api_client(kubeconfig: str | None) -> ApiClient:
    from kubernetes import config
    from kubernetes.client import ApiClient

    # An explicit kubeconfig wins; inside a pod the service account is used;
    # elsewhere $KUBECONFIG or ~/.kube/config, as kubectl does.
    try:
        if kubeconfig:
            api_client: ApiClient = config.new_client_from_config(config_file=kubeconfig)
            return api_client
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
    except (config.ConfigException, OSError) as error:
        if kubeconfig:
            raise ConfigError(
                f"loading --kubeconfig {kubeconfig!r} failed: {error}; pass a readable kubeconfig "
                "file, or leave --kubeconfig empty to use the in-cluster configuration"
            ) from error
        raise ConfigError(
            f"cannot load a Kubernetes configuration ({error}): run inside the cluster, "
            "set $KUBECONFIG, or pass --kubeconfig"
        ) from error
    return ApiClient()


def _apply(args: argparse.Namespace) -> int:
    if args.form not in ("forward-kubeadm", "forward-custom"):
        raise ConfigError(
            f"--apply works with the forward-kubeadm and forward-custom forms, not {args.form!r}"
        )
    import urllib3
    from kubernetes.client import ApiException

    namespace, name = _cluster_dns_configmap(args)
    with _api_client(args.kubeconfig) as api_client:
        try:
            stanza = None
            if not args.remove:
                upstreams = list(args.upstreams)
                if args.upstream_service:
                    upstreams += resolve_service_upstreams(
                        api_client, args.upstream_service, args.upstream_port
                    )
                stanza = corefile.forward_server_block(forward_settings_from_args(args, upstreams))

            if args.form == "forward-custom":
                key = corefile.custom_configmap_key(args.zone)
                apply_custom_stanza(api_client, namespace, name, key, stanza)
                changed = True
            else:
                changed = apply_kubeadm_stanza(api_client, namespace, name, args.zone, stanza)
        except ApiException as error:
            logger.error(
                "Writing ConfigMap %s/%s failed: HTTP %s %s.",
                namespace,
                name,
                error.status,
                error.reason,
                extra={"body": (error.body or "")[:500]},
            )
            return 1
        except urllib3.exceptions.HTTPError as error:
            logger.error(
                "Writing ConfigMap %s/%s failed: the API server could not be reached: %s",
                namespace,
                name,
                error,
            )
            return 1
    logger.info(
        "%s the stanza for zone %s %s ConfigMap %s/%s.",
        "Removed" if args.remove else "Wrote",
        args.zone,
        "from" if args.remove else "into",
        namespace,
        name,
        extra={"changed": changed},
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """Write the requested form, or apply it to the cluster with ``--apply``.

    Raises ConfigError, naming the option, when an option's value is invalid.
    """
    try:
        return _run(args)
    except CorefileError as error:
        named = name_options(error)
        if named is error:
            raise
        raise named from error


def _run(args: argparse.Namespace) -> int:
    _validate_options(args)
    if args.remove and not args.apply:
        raise ConfigError(
            "--remove needs --apply: it removes the stanza from the cluster's ConfigMap"
        )
    if args.apply:
        return _apply(args)
    if args.upstream_service:
        raise ConfigError(
            "--upstream-service reads the Service from the cluster and needs --apply; "
            "without it, pass the Service's cluster IP with --upstreams"
        )
    text = render(args, list(args.upstreams), _read_cluster_corefile(args.cluster_corefile))
    _write_output(text, args.output)
    return 0
