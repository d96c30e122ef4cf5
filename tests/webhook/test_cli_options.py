"""The options of ``numaflow-rdma webhook`` that the Helm chart relies on."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from numaflow_rdma.config import ConfigError
from numaflow_rdma.webhook import command


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log-level", default="info")
    command.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults() -> None:
    args = parse()
    assert args.port == 8443
    assert args.bind_address == "0.0.0.0"
    assert args.workers == 2
    assert args.interface == "net1"
    assert args.zone == "vertexdomain.local"
    assert args.transport_port == 7470
    assert args.nad_cache_ttl == 30.0
    assert args.kubeconfig == ""
    assert args.resource_name == ""


def test_options_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_WEBHOOK_PORT", "9443")
    monkeypatch.setenv("NUMAFLOW_RDMA_WEBHOOK_NETWORK", "infra/rdma-net")
    monkeypatch.setenv("NUMAFLOW_RDMA_WEBHOOK_NAD_CACHE_TTL", "5")
    args = parse()
    assert args.port == 9443
    assert args.network == "infra/rdma-net"
    assert args.nad_cache_ttl == 5.0
    assert parse("--port", "10443").port == 10443


def test_missing_network_is_config_error() -> None:
    with pytest.raises(ConfigError, match="missing --network"):
        command.run(parse())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--interface", "much-too-long-name"], "argument --interface: .* at most 15"),
        (["--transport-port", "0"], "invalid --transport-port 0: expected 1-65535"),
        (["--resource-count", "0"], "invalid --resource-count 0"),
        (["--zone", "bad_zone"], "argument --zone: invalid DNS zone 'bad_zone'"),
        (["--network", "a/b/c"], "argument --network: "),
    ],
)
def test_invalid_injection_options(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        command.run(parse("--network", "infra/rdma-net", *argv))


def test_bind_address_must_be_an_ip_address() -> None:
    args = parse(
        "--network", "infra/rdma-net", "--resource-name", "rdma/a", "--bind-address", "999.1.1.1"
    )

    with pytest.raises(ConfigError, match=r"invalid --bind-address '999\.1\.1\.1': expected an IPv4"):
        command.run(args)


def test_missing_certificate_is_config_error(tmp_path: Path) -> None:
    args = parse(
        "--network",
        "infra/rdma-net",
        "--resource-name",
        "rdma/a",
        "--tls-cert-file",
        str(tmp_path / "tls.crt"),
        "--tls-key-file",
        str(tmp_path / "tls.key"),
    )
    with pytest.raises(ConfigError, match="numaflow-rdma certs"):
        command.run(args)
