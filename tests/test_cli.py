"""The numaflow-rdma command: subcommands, --help, --version and settings from the environment."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from numaflow_rdma import __version__, cli, logs
from numaflow_rdma.config import (
    ConfigError,
    add_flag,
    add_option,
    env_name,
    name_sources,
    validate_dns_label,
    validate_dns_subdomain,
)

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


def test_help_drops_trailing_zero() -> None:
    parser = argparse.ArgumentParser()
    add_option(parser, "tool", "--interval", help="seconds between checks", default=60.0, type=float)
    add_option(parser, "tool", "--ratio", help="share kept", default=0.25, type=float)

    text = parser.format_help()

    assert "default 60)" in text
    assert "default 0.25)" in text


def test_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_TOOL_OUTPUT_DIR", "")
    monkeypatch.setenv("NUMAFLOW_RDMA_TOOL_VERIFY", " ")
    parser = argparse.ArgumentParser()
    add_option(parser, "tool", "--output-dir", help="folder", default="./certs")
    add_flag(parser, "tool", "--verify", help="check peers", default=True)

    args = parser.parse_args([])

    assert args.output_dir == "./certs"
    assert args.verify is True


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_float_option_rejects_nan_and_inf(
    text: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_option(parser, "tool", "--timeout", help="seconds", default=3.0, type=float)
    with pytest.raises(SystemExit):
        parser.parse_args([f"--timeout={text}"])
    assert f"expected a finite number, got {text!r}" in capsys.readouterr().err

    monkeypatch.setenv("NUMAFLOW_RDMA_TOOL_TIMEOUT", text)
    with pytest.raises(ConfigError, match=r"TIMEOUT: expected a finite number, got"):
        add_option(argparse.ArgumentParser(), "tool", "--timeout", help="s", default=3.0, type=float)


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
    with pytest.raises(ConfigError) as error:
        add_option(parser, "tool", "--port", help="port", default=8443, type=int)
    assert str(error.value) == (
        "invalid value 'many' in $NUMAFLOW_RDMA_TOOL_PORT: expected an integer, "
        "such as the default 8443; correct the variable or unset it"
    )


def test_invalid_environment_float_names_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_TOOL_TIMEOUT", "2s")
    parser = argparse.ArgumentParser()
    with pytest.raises(ConfigError) as error:
        add_option(parser, "tool", "--timeout", help="seconds", type=float)
    message = str(error.value)
    assert message.startswith(
        "invalid value '2s' in $NUMAFLOW_RDMA_TOOL_TIMEOUT: expected a number;"
    )
    assert "could not convert" not in message


def test_invalid_environment_list_item_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_TOOL_PORTS", "80, x ,443")
    parser = argparse.ArgumentParser()
    with pytest.raises(ConfigError) as error:
        add_option(parser, "tool", "--ports", help="ports", default=[], type=int, multiple=True)
    message = str(error.value)
    assert message.startswith("invalid value '80, x ,443' in $NUMAFLOW_RDMA_TOOL_PORTS: ")
    assert "'x' is not an integer: expected comma-separated integers" in message
    assert "invalid literal" not in message


def test_invalid_environment_keeps_custom_type_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def even(text: str) -> int:
        value = int(text)
        if value % 2:
            raise ValueError(f"expected an even number, got {value}")
        return value

    monkeypatch.setenv("NUMAFLOW_RDMA_TOOL_PAIRS", "3")
    parser = argparse.ArgumentParser()
    with pytest.raises(ConfigError) as error:
        add_option(parser, "tool", "--pairs", help="pairs", default=2, type=even)
    assert str(error.value) == (
        "invalid value '3' in $NUMAFLOW_RDMA_TOOL_PAIRS: expected an even number, got 3; "
        "correct the variable or unset it"
    )


def test_list_option_error_names_item_type(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_option(parser, "tool", "--ports", help="ports", default=[], type=int, multiple=True)
    assert parser.parse_args(["--ports", "80, 443"]).ports == [80, 443]
    with pytest.raises(SystemExit):
        parser.parse_args(["--ports", "80,x"])
    assert "argument --ports: invalid comma-separated int value: '80,x'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "it is empty"),
        ("Cams", "it contains 'C'; use only lower-case letters, digits and '-'"),
        ("cams_1 x", "it contains ' ' '_'; use only lower-case letters, digits and '-'"),
        ("cams-", "it starts or ends with '-'; start and end with a letter or digit"),
        ("a" * 64, "it has 64 characters, at most 63 are allowed"),
    ],
)
def test_dns_label_check_names_flag(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_dns_label(value, "--namespace", "namespace name")
    assert str(error.value) == (
        f"invalid --namespace {value!r}: namespace names must be DNS labels (RFC 1123), "
        f"but {problem}"
    )


def test_dns_label_check_accepts_valid_label() -> None:
    assert validate_dns_label("cams-1", "--namespace", "namespace name") == "cams-1"
    assert validate_dns_label("a" * 63, "--namespace", "namespace name") == "a" * 63


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "it is empty"),
        ("zone..dns", "part '' is invalid: it is empty"),
        ("zone.DNS", "part 'DNS' is invalid: it contains 'D' 'N' 'S'"),
        ("a" * 254, "it has 254 characters, at most 253 are allowed"),
    ],
)
def test_dns_subdomain_check_names_flag(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_dns_subdomain(value, "--configmap-name", "ConfigMap name")
    message = str(error.value)
    assert message.startswith(f"invalid --configmap-name {value!r}: ConfigMap names must be")
    assert f"but {problem}" in message


def test_dns_subdomain_check_accepts_dotted_name() -> None:
    assert validate_dns_subdomain("zone.dns-1", "--configmap-name", "ConfigMap name") == (
        "zone.dns-1"
    )


def option_metavars(subcommand: str) -> dict[str, str]:
    """Return the placeholder --help shows for each option of ``subcommand`` that takes a value."""
    parser = cli.build_parser()
    subparsers = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    metavars = {}
    for action in subparsers.choices[subcommand]._actions:
        if not action.option_strings or action.nargs == 0 or action.choices is not None:
            continue
        metavars[action.option_strings[0]] = action.metavar or action.dest.upper()
    return metavars


def expected_metavar(flag: str) -> str | None:
    if flag.endswith("-port"):
        return "PORT"
    if flag.endswith(("-file", "-dir")) or flag in ("--kubeconfig", "--output"):
        return "PATH"
    if flag.endswith("namespace"):
        return "NAMESPACE"
    return None


@pytest.mark.parametrize("name", SUBCOMMAND_NAMES)
def test_help_metavars_match_across_subcommands(name: str) -> None:
    others = {other: option_metavars(other) for other in SUBCOMMAND_NAMES if other != name}
    for flag, metavar in option_metavars(name).items():
        assert metavar == metavar.upper(), f"{name} {flag} {metavar}"
        expected = expected_metavar(flag)
        if expected is not None:
            assert metavar == expected, f"{name} {flag} {metavar}"
        for other, metavars in others.items():
            if flag in metavars:
                assert metavar == metavars[flag], (
                    f"{name} {flag} {metavar}, {other} {metavars[flag]}"
                )


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


def test_invalid_environment_boolean_lists_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_TOOL_DRY_RUN", "maybe")
    parser = argparse.ArgumentParser()
    with pytest.raises(ConfigError) as error:
        add_flag(parser, "tool", "--dry-run", help="log only")
    assert str(error.value) == (
        "invalid boolean 'maybe' in $NUMAFLOW_RDMA_TOOL_DRY_RUN: expected true or false "
        "(also accepted: 1, yes, on, 0, no, off)"
    )


def test_bad_environment_exits_with_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_CERTS_DAYS", "soon")
    assert cli.main(["certs"]) == 2
    assert capsys.readouterr().err == (
        "numaflow-rdma: invalid value 'soon' in $NUMAFLOW_RDMA_CERTS_DAYS: expected an integer, "
        "such as the default 365; correct the variable or unset it\n"
    )


def test_range_error_names_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_CERTS_DAYS", "0")

    assert cli.main(["certs", "--output-dir", str(tmp_path / "out")]) == 2
    assert (
        "invalid --days 0: expected a positive number of days "
        "(--days came from $NUMAFLOW_RDMA_CERTS_DAYS)"
    ) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_flag_on_command_line_names_no_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMAFLOW_RDMA_CERTS_DAYS", "0")
    monkeypatch.setenv("NUMAFLOW_RDMA_CERTS_SERVICE", "-bad")
    message = "invalid --days 0 and --service '-bad'"

    named = name_sources(message, "certs", ["--days=0", "--output-dir", "x"])

    assert named == f"{message} (--service came from $NUMAFLOW_RDMA_CERTS_SERVICE)"
    assert name_sources("no flag here", "certs", []) == "no flag here"


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


def test_demo_frames_error_states_rule(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["demo", "--frames", "abc"])

    message = capsys.readouterr().err
    assert "argument --frames" in message
    assert "expected a whole number of 0 or more, got 'abc'" in message
    assert "_positive_int" not in message
