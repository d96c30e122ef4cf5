"""``numaflow-rdma coredns`` options, forms and errors, without a cluster."""

from __future__ import annotations

import argparse
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
    with pytest.raises(ConfigError, match="NUMAFLOW_RDMA_COREDNS_PORT"):
        parse()


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
