"""``numaflow-rdma certs``: option checks, keeping existing files, and the files it writes."""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path

import pytest
from cryptography import x509

from numaflow_rdma import certs
from numaflow_rdma.config import ConfigError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    certs.add_arguments(parser)
    return parser.parse_args(list(argv))


def run_certs(output: Path, *argv: str) -> int:
    return certs.run(parse("--output-dir", str(output), *argv))


def file_contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def serving_certificate(output: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((output / "tls.crt").read_bytes())


def subject_alternative_names(output: Path) -> x509.SubjectAlternativeName:
    extension = serving_certificate(output).extensions
    return extension.get_extension_for_class(x509.SubjectAlternativeName).value


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("bad_host", "its label 'bad_host' is not a DNS label"),
        ("a..example.com", "it has an empty label"),
        ("-a.example.com", "its label '-a' is not a DNS label"),
        ("webhook.example.com.", "without the trailing dot"),
        ("10.0.0.256", "last label of a DNS name cannot be all digits"),
        ("a.*.example.com", "'*' is allowed only as the whole first label"),
        ("*", "a wildcard must stand in front of two or more labels"),
        ("*.com", "a wildcard must stand in front of two or more labels"),
        ("10.0.0.0/24", "is not a DNS label"),
        (f"{'a' * 64}.example.com", "has 64 characters, at most 63"),
        (".".join(["abcdefghi"] * 26), "has 259 characters, at most 253"),
    ],
)
def test_certs_rejects_invalid_extra_host(tmp_path: Path, host: str, problem: str) -> None:
    output = tmp_path / "certs"

    with pytest.raises(ConfigError) as error:
        run_certs(output, "--extra-hosts", f"ok.example.com,{host}")

    message = str(error.value)
    assert message.startswith(f"invalid --extra-hosts entry {host!r}: ")
    assert problem in message
    assert "give DNS names such as webhook.example.com or IP addresses" in message
    assert not output.exists()


def test_certs_rejects_scoped_ipv6_host(tmp_path: Path) -> None:
    output = tmp_path / "certs"

    with pytest.raises(ConfigError) as error:
        run_certs(output, "--extra-hosts", "fe80::1%eth0")

    assert str(error.value) == (
        "invalid --extra-hosts entry 'fe80::1%eth0': a certificate cannot name an IPv6 "
        "address with a zone; leave out the %zone part"
    )
    assert not output.exists()


def test_certs_accepts_wildcard_and_ip_hosts(tmp_path: Path) -> None:
    output = tmp_path / "certs"

    assert run_certs(output, "--extra-hosts", "*.Hooks.Example.com, 10.0.0.5,fd00::5") == 0

    names = subject_alternative_names(output)
    assert "*.hooks.example.com" in names.get_values_for_type(x509.DNSName)
    addresses = names.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("10.0.0.5") in addresses
    assert ipaddress.ip_address("fd00::5") in addresses


@pytest.mark.parametrize(
    ("namespace", "problem"),
    [
        ("Webhooks", "it contains 'W'; use only lower-case letters, digits and '-'"),
        ("web_hooks", "it contains '_'"),
        ("web.hooks", "it contains '.'"),
        ("-hooks", "it starts or ends with '-'"),
        ("hooks-", "it starts or ends with '-'"),
        ("", "it is empty"),
        ("a" * 64, "it has 64 characters, at most 63 are allowed"),
    ],
)
def test_certs_rejects_invalid_namespace(tmp_path: Path, namespace: str, problem: str) -> None:
    output = tmp_path / "certs"

    with pytest.raises(ConfigError) as error:
        run_certs(output, f"--namespace={namespace}")

    message = str(error.value)
    assert message.startswith(f"invalid --namespace {namespace!r}: ")
    assert "namespace names must be DNS labels (RFC 1123)" in message
    assert problem in message
    assert not output.exists()


@pytest.mark.parametrize(
    ("service", "problem"),
    [
        ("Hook", "it contains 'H'"),
        ("1hook", "must start with a letter"),
        ("hook.svc", "it contains '.'"),
    ],
)
def test_certs_rejects_invalid_service(tmp_path: Path, service: str, problem: str) -> None:
    output = tmp_path / "certs"

    with pytest.raises(ConfigError) as error:
        run_certs(output, "--service", service)

    assert str(error.value).startswith(f"invalid --service {service!r}: ")
    assert problem in str(error.value)
    assert not output.exists()


@pytest.mark.parametrize(
    ("days", "problem"),
    [("0", "expected a positive number of days"), ("-3", "expected a positive number of days")],
)
def test_certs_rejects_nonpositive_days(tmp_path: Path, days: str, problem: str) -> None:
    output = tmp_path / "certs"

    with pytest.raises(ConfigError, match=f"invalid --days {days}: {problem}"):
        run_certs(output, "--days", days)

    assert not output.exists()


def test_certs_rejects_days_past_year_9999(tmp_path: Path) -> None:
    output = tmp_path / "certs"

    with pytest.raises(ConfigError) as error:
        run_certs(output, "--days", "1000000")

    assert "invalid --days 1000000: the CA, valid ten times as long" in str(error.value)
    assert "expected at most" in str(error.value)
    assert not output.exists()


def test_certs_keeps_existing_files(tmp_path: Path) -> None:
    output = tmp_path / "certs"
    assert run_certs(output) == 0
    before = file_contents(output)

    with pytest.raises(ConfigError) as error:
        run_certs(output)

    message = str(error.value)
    for name in ("ca.crt", "ca.key", "tls.crt", "tls.key"):
        assert str(output / name) in message
    assert "already exist: pass --overwrite" in message
    assert file_contents(output) == before


def test_certs_rejects_one_existing_file(tmp_path: Path) -> None:
    output = tmp_path / "certs"
    output.mkdir()
    (output / "tls.key").write_bytes(b"a key from elsewhere\n")

    with pytest.raises(ConfigError) as error:
        run_certs(output)

    assert str(error.value).startswith(f"{output / 'tls.key'} already exists: pass --overwrite")
    assert file_contents(output) == {"tls.key": b"a key from elsewhere\n"}


def test_certs_overwrite_replaces_files(tmp_path: Path) -> None:
    output = tmp_path / "certs"
    assert run_certs(output) == 0
    before = file_contents(output)
    os.chmod(output / "tls.key", 0o644)

    assert run_certs(output, "--overwrite") == 0

    after = file_contents(output)
    assert sorted(after) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    for name in after:
        assert after[name] != before[name], name
    assert (output / "tls.key").stat().st_mode & 0o777 == 0o600
    assert (output / "ca.key").stat().st_mode & 0o777 == 0o600


def test_certs_overwrite_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "certs"
    assert run_certs(output) == 0
    before = file_contents(output)
    monkeypatch.setenv("NUMAFLOW_RDMA_CERTS_OVERWRITE", "true")

    assert run_certs(output) == 0

    assert file_contents(output)["ca.crt"] != before["ca.crt"]


def test_certs_rejects_output_dir_that_is_a_file(tmp_path: Path) -> None:
    output = tmp_path / "certs"
    output.write_text("not a folder\n")

    with pytest.raises(
        ConfigError, match=r"invalid --output-dir '.*certs': it exists and is not a folder"
    ):
        run_certs(output)

    assert output.read_text() == "not a folder\n"


def test_key_pair_write_without_overwrite_keeps_file(tmp_path: Path) -> None:
    ca = certs.make_ca()
    certificate_path = tmp_path / "ca.crt"
    certificate_path.write_bytes(b"existing\n")

    with pytest.raises(FileExistsError):
        ca.write(certificate_path, tmp_path / "ca.key", overwrite=False)

    assert certificate_path.read_bytes() == b"existing\n"
    assert not (tmp_path / "ca.key").exists()


def test_certs_help_names_overwrite_and_metavars() -> None:
    parser = argparse.ArgumentParser()
    certs.add_arguments(parser)
    text = parser.format_help()

    assert "--overwrite, --no-overwrite" in text
    assert "NUMAFLOW_RDMA_CERTS_OVERWRITE" in text
    for usage in (
        "--output-dir PATH",
        "--service NAME",
        "--namespace NAMESPACE",
        "--extra-hosts HOSTS",
        "--days DAYS",
    ):
        assert usage in text
