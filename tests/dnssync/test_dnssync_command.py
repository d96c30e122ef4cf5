"""The options of ``numaflow-rdma dnssync``: names, environment variables, defaults and checks."""

from __future__ import annotations

import argparse

import pytest

from numaflow_rdma.config import ConfigError
from numaflow_rdma.dnssync import command
from numaflow_rdma.dnssync.settings import EtcdEndpoint, parse_etcd_endpoints

# The Helm chart passes these; renaming one breaks it.
OPTIONS = [
    "--etcd-endpoints",
    "--etcd-ca-file",
    "--etcd-cert-file",
    "--etcd-key-file",
    "--etcd-username",
    "--etcd-password",
    "--etcd-prefix",
    "--zone",
    "--network",
    "--interface",
    "--transport-port",
    "--record-ttl",
    "--owner-id",
    "--resync-interval",
    "--publish-not-ready",
    "--leader-election",
    "--lease-name",
    "--lease-namespace",
    "--lease-duration",
    "--health-port",
    "--health-bind-address",
    "--dry-run",
    "--kubeconfig",
]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POD_NAME", "POD_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)


def test_every_option_has_help_and_variable() -> None:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    actions = {flag: action for action in parser._actions for flag in action.option_strings}

    for option in OPTIONS:
        assert option in actions, option
        variable = "NUMAFLOW_RDMA_DNSSYNC_" + option[2:].replace("-", "_").upper()
        assert f"env {variable}" in (actions[option].help or ""), option


def test_defaults() -> None:
    settings = command.settings_from_args(parse())

    assert settings.etcd.endpoints == (EtcdEndpoint("127.0.0.1", 2379, False),)
    assert settings.prefix == "/skydns"
    assert settings.zone == "vertexdomain.local"
    assert settings.interface == "net1"
    assert settings.transport_port == 7470
    assert settings.record_ttl == 30
    assert settings.resync_interval == 60
    assert settings.leader_election is True
    assert settings.lease_namespace == "default"
    assert settings.health_port == 8080
    assert settings.health_bind_address == "0.0.0.0"
    assert settings.zone_prefix == "/skydns/local/vertexdomain/"


def test_owner_and_lease_namespace_from_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "dnssync-7d9f-abcde")
    monkeypatch.setenv("POD_NAMESPACE", "numaflow-rdma")

    settings = command.settings_from_args(parse())

    assert settings.owner_id == "dnssync-7d9f-abcde"
    assert settings.lease_namespace == "numaflow-rdma"


def test_environment_sets_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_DNSSYNC_ETCD_PASSWORD", "from-secret")
    monkeypatch.setenv("NUMAFLOW_RDMA_DNSSYNC_ETCD_USERNAME", "dnssync")
    monkeypatch.setenv("NUMAFLOW_RDMA_DNSSYNC_LEADER_ELECTION", "false")
    monkeypatch.setenv("NUMAFLOW_RDMA_DNSSYNC_PUBLISH_NOT_READY", "true")
    monkeypatch.setenv("NUMAFLOW_RDMA_DNSSYNC_RECORD_TTL", "12")

    settings = command.settings_from_args(parse())

    assert settings.etcd.password == "from-secret"
    assert settings.leader_election is False
    assert settings.publish_not_ready is True
    assert settings.record_ttl == 12
    assert "from-secret" not in repr(settings)


def test_flags_switch_on_and_off() -> None:
    assert command.settings_from_args(parse("--no-leader-election")).leader_election is False
    assert command.settings_from_args(parse("--publish-not-ready")).publish_not_ready is True


def test_dry_run_takes_no_lease() -> None:
    settings = command.settings_from_args(parse("--dry-run"))

    assert settings.dry_run
    assert not settings.leader_election


def test_endpoints_parse() -> None:
    assert parse_etcd_endpoints(
        "https://etcd-0.etcd:2379, http://127.0.0.1:23790,[::1]:2380,etcd"
    ) == (
        EtcdEndpoint("etcd-0.etcd", 2379, True),
        EtcdEndpoint("127.0.0.1", 23790, False),
        EtcdEndpoint("::1", 2380, False),
        EtcdEndpoint("etcd", 2379, False),
    )
    assert str(EtcdEndpoint("::1", 2380, True)) == "https://[::1]:2380"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--etcd-endpoints", ""], "missing --etcd-endpoints"),
        (["--etcd-endpoints", "unix:///run/etcd.sock"], "expected an http:// or https:// URL"),
        (["--etcd-endpoints", "http://etcd:notaport"], "invalid --etcd-endpoints entry"),
        (["--etcd-cert-file", __file__], "--etcd-key-file"),
        (["--etcd-username", "u"], "--etcd-password"),
        (["--etcd-ca-file", __file__], "use https:// endpoints"),
        (
            ["--etcd-endpoints", "https://etcd:2379", "--etcd-ca-file", "/nonexistent/ca.pem"],
            "cannot read --etcd-ca-file /nonexistent/ca.pem: No such file or directory",
        ),
        (
            ["--zone", "bad_zone.local"],
            "argument --zone: invalid DNS zone 'bad_zone.local': invalid DNS label 'bad_zone'",
        ),
        (["--etcd-prefix", "skydns"], "argument --etcd-prefix: invalid etcd prefix"),
        (["--network", "a/b/c"], "invalid --network"),
        (["--interface", "much-too-long-name"], "argument --interface: .* at most 15 are allowed"),
        (["--network", "", "--interface", ""], "set --network or --interface"),
        (["--transport-port", "70000"], "invalid --transport-port"),
        (["--record-ttl", "0"], "invalid --record-ttl"),
        (["--record-ttl", str(2**31)], "expected 1 to 2147483647 seconds"),
        (["--health-bind-address", "999.1.1.1"], "invalid --health-bind-address '999.1.1.1'"),
        (["--resync-interval", "0"], "invalid --resync-interval"),
        (["--lease-duration", "0.5"], "invalid --lease-duration"),
        (["--health-port", "-1"], "invalid --health-port"),
    ],
)
def test_invalid_settings_are_rejected(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        command.settings_from_args(parse(*argv))


def test_module_imports_only_light_modules() -> None:
    import subprocess
    import sys

    code = (
        "import sys, numaflow_rdma.dnssync.command; "
        "heavy = [m for m in ('kubernetes', 'pyetcd', 'grpc', 'prometheus_client') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == ""
