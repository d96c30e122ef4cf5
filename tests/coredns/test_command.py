"""``numaflow-rdma coredns`` options, forms and errors, without a cluster."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from numaflow_rdma import coredns, corefile
from numaflow_rdma.config import ConfigError

ENDPOINT = "http://numaflow-rdma-etcd:2379"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    coredns.add_arguments(parser)
    return parser.parse_args(list(argv))


def run_to_text(tmp_path: Path, *argv: str) -> str:
    output = tmp_path / "out"
    assert coredns.run(parse(*argv, "--output", str(output))) == 0
    return output.read_text()


def test_zone_form_matches_pure_function(tmp_path: Path) -> None:
    text = run_to_text(tmp_path, "--etcd-endpoints", ENDPOINT, "--zone", "frames.test")
    expected = corefile.zone_server_block(
        corefile.ZoneServerSettings(
            etcd=corefile.EtcdSettings(endpoints=(ENDPOINT,)), zone="frames.test"
        )
    )
    assert text == expected


def test_zone_configmap_form(tmp_path: Path) -> None:
    text = run_to_text(
        tmp_path,
        "--form",
        "zone-configmap",
        "--etcd-endpoints",
        ENDPOINT,
        "--namespace",
        "dns",
        "--configmap-name",
        "zone-dns",
    )
    manifest = yaml.safe_load(text)
    assert manifest["kind"] == "ConfigMap"
    assert manifest["metadata"] == {"name": "zone-dns", "namespace": "dns"}
    assert manifest["data"]["Corefile"].startswith("vertexdomain.local:53 {\n")
    assert f"endpoint {ENDPOINT}\n" in manifest["data"]["Corefile"]


def test_options_read_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_COREDNS_ETCD_ENDPOINTS", "https://a:2379,https://b:2379")
    monkeypatch.setenv("NUMAFLOW_RDMA_COREDNS_ETCD_CA_FILE", "/tls/ca.crt")
    monkeypatch.setenv("NUMAFLOW_RDMA_COREDNS_SERVE_STALE", "0")
    monkeypatch.setenv("NUMAFLOW_RDMA_COREDNS_LOG_QUERIES", "true")

    text = run_to_text(tmp_path)

    assert "endpoint https://a:2379 https://b:2379\n" in text
    assert "tls /tls/ca.crt\n" in text
    assert "serve_stale" not in text
    assert "    log\n" in text


def test_forward_form(tmp_path: Path) -> None:
    text = run_to_text(tmp_path, "--form", "forward", "--upstreams", "10.96.0.53")
    assert "forward . 10.96.0.53:53\n" in text


def test_forward_custom_form(tmp_path: Path) -> None:
    text = run_to_text(tmp_path, "--form", "forward-custom", "--upstreams", "10.96.0.53")
    manifest = yaml.safe_load(text)
    assert manifest["metadata"] == {"name": "coredns-custom", "namespace": "kube-system"}
    assert list(manifest["data"]) == ["numaflow-rdma.vertexdomain.local.server"]
    assert "forward . 10.96.0.53:53" in manifest["data"]["numaflow-rdma.vertexdomain.local.server"]


def test_forward_kubeadm_form_merges_corefile(tmp_path: Path) -> None:
    cluster = tmp_path / "Corefile"
    cluster.write_text(".:53 {\n    errors\n    forward . /etc/resolv.conf\n}\n")

    text = run_to_text(
        tmp_path,
        "--form",
        "forward-kubeadm",
        "--upstreams",
        "10.96.0.53",
        "--cluster-corefile",
        str(cluster),
    )

    manifest = yaml.safe_load(text)
    merged = manifest["data"]["Corefile"]
    assert manifest["metadata"] == {"name": "coredns", "namespace": "kube-system"}
    assert merged.startswith(cluster.read_text())
    assert "# BEGIN numaflow-rdma zone vertexdomain.local\nvertexdomain.local:53 {\n" in merged


def test_forward_kubeadm_form_needs_corefile() -> None:
    with pytest.raises(ConfigError, match="pass --cluster-corefile"):
        coredns.run(parse("--form", "forward-kubeadm", "--upstreams", "10.96.0.53"))


def test_missing_cluster_corefile_file(tmp_path: Path) -> None:
    args = parse(
        "--form",
        "forward-kubeadm",
        "--upstreams",
        "10.96.0.53",
        "--cluster-corefile",
        str(tmp_path / "none"),
    )
    with pytest.raises(ConfigError, match="cannot read --cluster-corefile"):
        coredns.run(args)


def test_zone_form_needs_endpoints() -> None:
    with pytest.raises(ConfigError, match="missing etcd endpoints"):
        coredns.run(parse())


def test_upstream_service_needs_apply() -> None:
    with pytest.raises(ConfigError, match="needs --apply"):
        coredns.run(parse("--form", "forward", "--upstream-service", "dns/zone"))


def test_remove_needs_apply() -> None:
    with pytest.raises(ConfigError, match="--remove needs --apply"):
        coredns.run(parse("--remove"))


def test_apply_rejects_zone_form() -> None:
    with pytest.raises(
        ConfigError, match="works with the forward-kubeadm and forward-custom forms"
    ):
        coredns.run(parse("--apply", "--etcd-endpoints", ENDPOINT))


def test_invalid_cluster_dns_configmap() -> None:
    args = parse(
        "--form", "forward-custom", "--upstreams", "10.0.0.1", "--cluster-dns-configmap", "coredns"
    )
    with pytest.raises(ConfigError, match="expected NAMESPACE/NAME"):
        coredns.run(args)


def test_invalid_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_COREDNS_PORT", "fifty-three")
    with pytest.raises(ConfigError) as error:
        parse()
    assert str(error.value) == (
        "invalid value 'fifty-three' in $NUMAFLOW_RDMA_COREDNS_PORT: expected an integer, "
        "such as the default 53; correct the variable or unset it"
    )


ZONE = ("--etcd-endpoints", ENDPOINT)
HTTPS_ZONE = ("--etcd-endpoints", "https://numaflow-rdma-etcd:2379")
FORWARD = ("--form", "forward", "--upstreams", "10.96.0.53")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            (*ZONE, "--zone", "bad_zone.test"),
            "argument --zone: invalid DNS zone 'bad_zone.test': invalid DNS label",
        ),
        (
            (*ZONE, "--zone", "svc.cluster.local"),
            "arguments --zone, --cluster-domain: invalid zone 'svc.cluster.local': it overlaps",
        ),
        ((*ZONE, "--zone", "arpa"), "argument --zone: invalid zone 'arpa': it overlaps"),
        (
            (*ZONE, "--cluster-domain", "cluster_a.local"),
            "argument --cluster-domain: invalid cluster domain 'cluster_a.local': label "
            "'cluster_a': use only letters",
        ),
        ((*ZONE, "--port", "0"), "argument --port: invalid DNS port 0:"),
        (
            (*ZONE, "--listen-addresses", "127.0.0.1,localhost"),
            "argument --listen-addresses: invalid listen address 'localhost':",
        ),
        ((), "argument --etcd-endpoints: missing etcd endpoints"),
        (
            ("--etcd-endpoints", "ftp://etcd:2379"),
            "argument --etcd-endpoints: invalid etcd endpoint 'ftp://etcd:2379':",
        ),
        (
            ("--etcd-endpoints", f"{ENDPOINT},https://b:2379"),
            "argument --etcd-endpoints: invalid etcd endpoints",
        ),
        (
            (*ZONE, "--etcd-prefix", "skydns"),
            "argument --etcd-prefix: invalid etcd prefix 'skydns'",
        ),
        (
            (*ZONE, "--etcd-ca-file", "/tls/ca.crt"),
            "arguments --etcd-endpoints, --etcd-ca-file: etcd TLS files are set ('/tls/ca.crt') "
            f"but the endpoints {ENDPOINT} use http://",
        ),
        (
            (*HTTPS_ZONE, "--etcd-ca-file", "tls/ca.crt"),
            "argument --etcd-ca-file: invalid etcd CA file 'tls/ca.crt'",
        ),
        (
            (*HTTPS_ZONE, "--etcd-cert-file", "/tls/c.crt"),
            "arguments --etcd-cert-file, --etcd-key-file: the etcd client certificate and key "
            "must be given together: got certificate '/tls/c.crt' and key None",
        ),
        (
            (*HTTPS_ZONE, "--etcd-cert-file", "/tls/c.crt", "--etcd-key-file", "tls/c.key"),
            "argument --etcd-key-file: invalid etcd key file 'tls/c.key'",
        ),
        (
            (*HTTPS_ZONE, "--etcd-cert-file", "c.crt", "--etcd-key-file", "/tls/c.key"),
            "argument --etcd-cert-file: invalid etcd certificate file 'c.crt'",
        ),
        (
            (*ZONE, "--etcd-username", "dns user"),
            "argument --etcd-username: invalid etcd username 'dns user'",
        ),
        (
            (*ZONE, "--etcd-username", "dns", "--etcd-password-env", "1PASSWORD"),
            "argument --etcd-password-env: invalid password variable '1PASSWORD'",
        ),
        ((*ZONE, "--health-port", "70000"), "argument --health-port: invalid health port 70000"),
        ((*ZONE, "--ready-port", "0"), "argument --ready-port: invalid ready port 0"),
        ((*ZONE, "--metrics-port", "-1"), "argument --metrics-port: invalid metrics port -1"),
        ((*ZONE, "--lameduck", "-1"), "argument --lameduck: invalid lameduck duration -1"),
        ((*ZONE, "--cache-ttl", "0"), "argument --cache-ttl: invalid cache TTL 0"),
        (
            (*ZONE, "--cache-denial-ttl", "0"),
            "argument --cache-denial-ttl: invalid cache denial TTL 0",
        ),
        (
            (*ZONE, "--serve-stale", "-5"),
            "argument --serve-stale: invalid serve_stale duration -5",
        ),
        (("--form", "forward"), "argument --upstreams: missing upstream"),
        (
            ("--form", "forward", "--upstreams", "zone-dns.svc"),
            "argument --upstreams: invalid upstream 'zone-dns.svc'",
        ),
        (
            ("--form", "forward", "--upstreams", "10.96.0.53:0"),
            "argument --upstreams: invalid port of upstream '10.96.0.53:0'",
        ),
        (
            (*FORWARD, "--cache-ttl", "0"),
            "argument --cache-ttl: invalid cache TTL 0",
        ),
        (
            (*ZONE, "--namespace", "DNS"),
            "invalid --namespace 'DNS': namespace names must be DNS labels (RFC 1123), "
            "but it contains 'D' 'N' 'S'",
        ),
        (
            (*ZONE, "--configmap-name", "zone_dns"),
            "invalid --configmap-name 'zone_dns': ConfigMap names must be DNS subdomains",
        ),
        (
            (*FORWARD, "--upstream-port", "0"),
            "invalid --upstream-port 0: expected a port number from 1 to 65535",
        ),
        (
            (
                "--form",
                "forward-custom",
                "--upstreams",
                "10.96.0.53",
                "--cluster-dns-configmap",
                "Kube-System/coredns-custom",
            ),
            "invalid namespace in --cluster-dns-configmap 'Kube-System': namespace names must "
            "be DNS labels",
        ),
        (
            (
                "--form",
                "forward-custom",
                "--upstreams",
                "10.96.0.53",
                "--cluster-dns-configmap",
                "kube-system/coredns custom",
            ),
            "invalid name in --cluster-dns-configmap 'coredns custom': object names must be DNS "
            "subdomains",
        ),
    ],
)
def test_invalid_option_is_named(argv: tuple[str, ...], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        coredns.run(parse(*argv))
    assert str(error.value).startswith(expected)


def test_option_of_setting_covers_every_setting() -> None:
    def field_paths(settings_class: type, prefix: str = "") -> set[str]:
        paths = set()
        for field in dataclasses.fields(settings_class):
            nested = getattr(corefile, field.type, None) if isinstance(field.type, str) else None
            if dataclasses.is_dataclass(nested):
                paths |= field_paths(nested, f"{prefix}{field.name}.")  # type: ignore[arg-type]
            else:
                paths.add(f"{prefix}{field.name}")
        return paths

    settings = field_paths(corefile.ZoneServerSettings) | field_paths(corefile.ForwardSettings)
    # log_queries is a flag, which no value can make invalid.
    assert set(coredns.OPTION_OF_SETTING) == settings - {"log_queries"}
    parser = argparse.ArgumentParser()
    coredns.add_arguments(parser)
    flags = {flag for action in parser._actions for flag in action.option_strings}
    assert set(coredns.OPTION_OF_SETTING.values()) <= flags


def test_cluster_corefile_merge_error_names_option(tmp_path: Path) -> None:
    cluster = tmp_path / "Corefile"
    cluster.write_text(".:53 {\n    errors\n}\nvertexdomain.local:53 {\n    errors\n}\n")
    args = parse(*FORWARD[2:], "--form", "forward-kubeadm", "--cluster-corefile", str(cluster))

    with pytest.raises(ConfigError) as error:
        coredns.run(args)

    assert str(error.value).startswith(
        f"merging the stanza into --cluster-corefile {str(cluster)!r} failed: the Corefile "
        "already has a server block for vertexdomain.local"
    )


def test_help_shows_metavars() -> None:
    parser = argparse.ArgumentParser()
    coredns.add_arguments(parser)
    text = parser.format_help()
    for usage in (
        "--output PATH",
        "--port PORT",
        "--health-port PORT",
        "--upstream-port PORT",
        "--etcd-ca-file PATH",
        "--kubeconfig PATH",
        "--cluster-corefile PATH",
        "--lameduck SECONDS",
        "--serve-stale SECONDS",
        "--upstream-service NAMESPACE/NAME",
        "--cluster-dns-configmap NAMESPACE/NAME",
    ):
        assert usage in text


def test_every_option_has_help() -> None:
    parser = argparse.ArgumentParser()
    coredns.add_arguments(parser)
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and "(env NUMAFLOW_RDMA_COREDNS_" in action.help, action.dest


@pytest.mark.skipif(
    any(
        importlib.util.find_spec(module) is None
        for module in ("numaflow_rdma.webhook.command", "numaflow_rdma.dnssync.command")
    ),
    reason="the numaflow-rdma entry point imports every subcommand, and one is not written yet",
)
def test_entry_point_reports_invalid_zone() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "numaflow_rdma.cli",
            "coredns",
            "--etcd-endpoints",
            ENDPOINT,
            "--zone",
            "local",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "overlaps 'cluster.local'" in result.stderr
