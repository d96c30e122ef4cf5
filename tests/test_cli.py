"""The numaflow-rdma command: subcommands, --help, --version and settings from the environment."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys

import pytest

from numaflow_rdma import __version__, cli, logs
from numaflow_rdma.config import ConfigError, add_flag, add_option, env_name

SUBCOMMAND_NAMES = [subcommand.name for subcommand in cli.SUBCOMMANDS]


def test_subcommands_are_the_documented_five() -> None:
    assert SUBCOMMAND_NAMES == ["webhook", "dnssync", "coredns", "certs", "demo"]


@pytest.mark.parametrize("name", SUBCOMMAND_NAMES)
def test_help_explains_every_option(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    output = capsys.readouterr().out
    assert "--log-format" in output
    parser = cli.build_parser()
    subparsers = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    for action in subparsers.choices[name]._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{name} {action.option_strings} has no help text"


def test_version_is_printed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "numaflow_rdma.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"numaflow-rdma {__version__}"


def test_env_name_includes_subcommand() -> None:
    assert env_name("dnssync", "--etcd-endpoints") == "NUMAFLOW_RDMA_DNSSYNC_ETCD_ENDPOINTS"


def test_option_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_TOOL_PORT", "9443")
    monkeypatch.setenv("NUMAFLOW_RDMA_TOOL_HOSTS", "a, b,,c")
    parser = argparse.ArgumentParser()
    add_option(parser, "tool", "--port", help="port", default=8443, type=int)
    add_option(parser, "tool", "--hosts", help="hosts", default=[], multiple=True)
    args = parser.parse_args([])
    assert args.port == 9443
    assert args.hosts == ["a", "b", "c"]


def test_flag_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_TOOL_PORT", "9443")
    parser = argparse.ArgumentParser()
    add_option(parser, "tool", "--port", help="port", default=8443, type=int)
    assert parser.parse_args(["--port", "1234"]).port == 1234


def test_invalid_environment_value_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_TOOL_PORT", "many")
    parser = argparse.ArgumentParser()
    with pytest.raises(ConfigError, match=r"NUMAFLOW_RDMA_TOOL_PORT"):
        add_option(parser, "tool", "--port", help="port", default=8443, type=int)


def test_invalid_choice_in_environment_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_TOOL_LOG_FORMAT", "xml")
    parser = argparse.ArgumentParser()
    with pytest.raises(ConfigError, match="expected one of text, json"):
        add_option(parser, "tool", "--log-format", help="f", default="text", choices=logs.FORMATS)


def test_boolean_flag_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_TOOL_DRY_RUN", "yes")
    parser = argparse.ArgumentParser()
    add_flag(parser, "tool", "--dry-run", help="log only")
    assert parser.parse_args([]).dry_run is True
    assert parser.parse_args(["--no-dry-run"]).dry_run is False


def test_bad_environment_exits_with_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_CERTS_DAYS", "soon")
    assert cli.main(["certs"]) == 2


def test_json_logs_carry_extra_fields() -> None:
    record = logging.LogRecord(
        "numaflow_rdma.x", logging.INFO, __file__, 1, "Hello %s.", ("pod",), None
    )
    record.namespace = "cams"
    entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["message"] == "Hello pod."
    assert entry["level"] == "info"
    assert entry["namespace"] == "cams"


def test_text_logs_append_extra_fields() -> None:
    record = logging.LogRecord("numaflow_rdma.x", logging.WARNING, __file__, 1, "Retry.", (), None)
    record.attempt = 2
    line = logs.TextFormatter().format(record)
    assert "WARNING numaflow_rdma.x: Retry. attempt=2" in line


def test_certs_writes_files_and_prints_ca_bundle(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    import base64
    from pathlib import Path

    from cryptography import x509

    output = Path(str(tmp_path)) / "certs"
    assert (
        cli.main(["certs", "--output-dir", str(output), "--service", "hook", "--namespace", "sys"])
        == 0
    )
    bundle = base64.b64decode(capsys.readouterr().out.strip())
    assert bundle == (output / "ca.crt").read_bytes()
    serving = x509.load_pem_x509_certificate((output / "tls.crt").read_bytes())
    hosts = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "hook.sys.svc" in hosts.get_values_for_type(x509.DNSName)
    assert (output / "tls.key").stat().st_mode & 0o077 == 0
