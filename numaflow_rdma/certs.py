"""Certificates for the webhook and the local control plane.

The API server only calls a webhook over TLS and checks the serving
certificate against the ``caBundle`` of the webhook configuration. In a
cluster cert-manager usually issues that certificate; for development, tests
and clusters without cert-manager, ``numaflow-rdma certs`` makes a small CA and
a serving certificate for the webhook's Service names. The local control plane
uses the same functions for kube-apiserver's serving and client certificates.

Keys are ECDSA P-256, which kube-apiserver, Go's TLS stack and OpenSSL all
accept, and which is fast to generate.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from numaflow_rdma.config import (
    MAX_DNS_LABEL_LENGTH,
    MAX_DNS_SUBDOMAIN_LENGTH,
    ConfigError,
    add_flag,
    add_option,
    validate_dns_label,
)

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

logger = logging.getLogger(__name__)

COMMAND = "certs"
# The files ``numaflow-rdma certs`` writes into --output-dir.
CA_CERTIFICATE_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
CERTIFICATE_FILE = "tls.crt"
KEY_FILE = "tls.key"
OUTPUT_FILES = (CA_CERTIFICATE_FILE, CA_KEY_FILE, CERTIFICATE_FILE, KEY_FILE)
# One label of a DNS name in a certificate, in any case: RFC 1123 letters,
# digits and '-', not at either end.
_HOST_LABEL_PATTERN = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM-encoded."""

    certificate_pem: bytes
    key_pem: bytes

    def write(self, certificate_path: Path, key_path: Path, *, overwrite: bool = True) -> None:
        """Write both files; the key is readable by its owner only.

        Without ``overwrite``, raises FileExistsError when either file exists.
        """
        _write_file(certificate_path, self.certificate_pem, overwrite=overwrite, private=False)
        _write_file(key_path, self.key_pem, overwrite=overwrite, private=True)


def _write_file(path: Path, data: bytes, *, overwrite: bool, private: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    descriptor = os.open(path, flags, 0o600 if private else 0o666)
    with os.fdopen(descriptor, "wb") as file:
        if private:
            # os.open keeps the mode of an existing file, so the mode is set
            # before the key is written into it.
            os.fchmod(file.fileno(), 0o600)
        file.write(data)


def _new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _subject_alternative_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    from cryptography import x509

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def make_ca(common_name: str = "numaflow-rdma CA", days: int = 3650) -> KeyPair:
    """Make a self-signed certificate authority."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_certificate(
    ca: KeyPair,
    common_name: str,
    *,
    hosts: Sequence[str] = (),
    organizations: Sequence[str] = (),
    server: bool = True,
    client: bool = False,
    days: int = 365,
) -> KeyPair:
    """Issue a leaf certificate signed by ``ca`` for ``hosts`` (DNS names or IP addresses).

    ``organizations`` become the subject's O fields, which kube-apiserver reads
    as the groups of a client certificate's user.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_certificate = x509.load_pem_x509_certificate(ca.certificate_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    key = _new_key()
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_certificate.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_subject_alternative_names(hosts)), critical=False
        )
    certificate = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    return KeyPair(certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def service_hosts(service: str, namespace: str) -> list[str]:
    """Return the names a Service answers to inside the cluster, short to fully qualified."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def ca_bundle(ca: KeyPair) -> str:
    """Return the base64 form of the CA certificate that ``caBundle`` fields take."""
    return base64.b64encode(ca.certificate_pem).decode("ascii")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``numaflow-rdma certs``."""
    group = parser.add_argument_group("certificates")
    add_option(
        group,
        COMMAND,
        "--output-dir",
        help="folder to write ca.crt, ca.key, tls.crt and tls.key into; created if missing",
        default="./certs",
        metavar="PATH",
    )
    add_flag(
        group,
        COMMAND,
        "--overwrite",
        help="replace ca.crt, ca.key, tls.crt and tls.key when they exist in --output-dir",
    )
    add_option(
        group,
        COMMAND,
        "--service",
        help="name of the webhook's Service; the certificate is valid for its cluster names",
        default="numaflow-rdma-webhook",
        metavar="NAME",
    )
    add_option(
        group,
        COMMAND,
        "--namespace",
        help="namespace of the webhook's Service",
        default="numaflow-rdma",
        metavar="NAMESPACE",
    )
    add_option(
        group,
        COMMAND,
        "--extra-hosts",
        help=(
            "more DNS names (a leading *. for a wildcard) or IP addresses for the certificate, "
            "comma-separated"
        ),
        default=[],
        multiple=True,
        metavar="HOSTS",
    )
    add_option(
        group,
        COMMAND,
        "--days",
        help="validity of the serving certificate, in days (the CA gets ten times as long)",
        default=365,
        type=int,
        metavar="DAYS",
    )


def validate_host(host: str) -> str:
    """Return ``host`` as a certificate names it: an IP address, or a DNS name in lower case.

    DNS names follow RFC 1123 and may start with a ``*.`` wildcard label.
    Raises ConfigError naming --extra-hosts and the rule that failed.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise ConfigError(
                f"invalid --extra-hosts entry {host!r}: a certificate cannot name an IPv6 "
                "address with a zone; leave out the %zone part"
            )
        return str(address)

    problem = _host_name_problem(host)
    if problem is not None:
        raise ConfigError(
            f"invalid --extra-hosts entry {host!r}: {problem}; give DNS names such as "
            "webhook.example.com or IP addresses such as 10.0.0.5, comma-separated"
        )
    return host.lower()


def _host_name_problem(host: str) -> str | None:
    if len(host) > MAX_DNS_SUBDOMAIN_LENGTH:
        return f"it has {len(host)} characters, at most {MAX_DNS_SUBDOMAIN_LENGTH} are allowed"
    if host.endswith("."):
        return "certificates name hosts without the trailing dot; remove it"
    labels = host.split(".")
    if labels[0] == "*":
        # TLS clients reject a wildcard directly in front of a top-level domain, such as *.com.
        if len(labels) < 3:
            return "a wildcard must stand in front of two or more labels, as in *.example.com"
        labels = labels[1:]
    for label in labels:
        if not label:
            return "it has an empty label"
        if len(label) > MAX_DNS_LABEL_LENGTH:
            return (
                f"its label {label!r} has {len(label)} characters, "
                f"at most {MAX_DNS_LABEL_LENGTH} are allowed"
            )
        if not _HOST_LABEL_PATTERN.fullmatch(label):
            return (
                f"its label {label!r} is not a DNS label: use only letters, digits and '-', "
                "and start and end with a letter or digit; '*' is allowed only as the whole "
                "first label"
            )
    if labels[-1].isdigit():
        return "it is not an IP address, and the last label of a DNS name cannot be all digits"
    return None


def _validate_arguments(args: argparse.Namespace) -> list[str]:
    """Validate the options and return the extra hosts as the certificate names them."""
    if args.days <= 0:
        raise ConfigError(f"invalid --days {args.days}: expected a positive number of days")
    # Python's datetime, and so a certificate's notAfter here, ends in year
    # 9999, and the CA is valid ten times as long as the serving certificate.
    now = datetime.datetime.now(datetime.timezone.utc)
    max_days = (datetime.datetime.max.replace(tzinfo=datetime.timezone.utc) - now).days // 10 - 1
    if args.days > max_days:
        raise ConfigError(
            f"invalid --days {args.days}: the CA, valid ten times as long, would expire after "
            f"year 9999; expected at most {max_days} days"
        )
    validate_dns_label(args.service, "--service", "Service name")
    if not args.service[0].isalpha():
        raise ConfigError(
            f"invalid --service {args.service!r}: Service names must start with a letter "
            "(RFC 1035 label)"
        )
    validate_dns_label(args.namespace, "--namespace", "namespace name")
    return [validate_host(host) for host in args.extra_hosts]


def _check_no_output_files(output: Path) -> None:
    existing = [output / name for name in OUTPUT_FILES if (output / name).exists()]
    if existing:
        paths = ", ".join(str(path) for path in existing)
        raise ConfigError(
            f"{paths} already exist{'s' if len(existing) == 1 else ''}: pass --overwrite to "
            "replace the CA and certificate, or choose another --output-dir"
        )


def run(args: argparse.Namespace) -> int:
    """Write the CA and serving certificate, then print the caBundle on standard output.

    Raises ConfigError, naming the option, for an invalid option and, without
    --overwrite, when one of the files exists.
    """
    extra_hosts = _validate_arguments(args)
    output = Path(args.output_dir)
    if output.exists() and not output.is_dir():
        raise ConfigError(
            f"invalid --output-dir {args.output_dir!r}: it exists and is not a folder"
        )
    if not args.overwrite:
        _check_no_output_files(output)
    hosts = [*service_hosts(args.service, args.namespace), *extra_hosts]

    ca = make_ca(days=args.days * 10)
    serving = issue_certificate(
        ca, f"{args.service}.{args.namespace}.svc", hosts=hosts, days=args.days
    )
    try:
        output.mkdir(parents=True, exist_ok=True)
        ca.write(output / CA_CERTIFICATE_FILE, output / CA_KEY_FILE, overwrite=args.overwrite)
        serving.write(output / CERTIFICATE_FILE, output / KEY_FILE, overwrite=args.overwrite)
    except FileExistsError as error:
        # Another process created the file after the check above.
        raise ConfigError(
            f"{error.filename} already exists: pass --overwrite to replace it"
        ) from error
    except OSError as error:
        raise ConfigError(
            f"writing into --output-dir {args.output_dir!r} failed: {error}"
        ) from error

    logger.info(
        "Wrote a CA and a serving certificate.",
        extra={"directory": str(output), "hosts": ",".join(hosts), "days": args.days},
    )
    print(ca_bundle(ca))
    return 0
