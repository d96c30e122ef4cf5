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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from numaflow_rdma.config import add_option

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

logger = logging.getLogger(__name__)

COMMAND = "certs"


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM-encoded."""

    certificate_pem: bytes
    key_pem: bytes

    def write(self, certificate_path: Path, key_path: Path) -> None:
        """Write both files; the key is readable by its owner only."""
        certificate_path.write_bytes(self.certificate_pem)
        key_path.touch(mode=0o600, exist_ok=True)
        key_path.write_bytes(self.key_pem)
        os.chmod(key_path, 0o600)


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
    add_option(
        parser,
        COMMAND,
        "--output-dir",
        help="folder to write ca.crt, ca.key, tls.crt and tls.key into; created if missing",
        default="./certs",
    )
    add_option(
        parser,
        COMMAND,
        "--service",
        help="name of the webhook's Service; the certificate is valid for its cluster names",
        default="numaflow-rdma-webhook",
    )
    add_option(
        parser,
        COMMAND,
        "--namespace",
        help="namespace of the webhook's Service",
        default="numaflow-rdma",
    )
    add_option(
        parser,
        COMMAND,
        "--extra-hosts",
        help="more DNS names or IP addresses for the certificate, comma-separated",
        default=[],
        multiple=True,
    )
    add_option(
        parser,
        COMMAND,
        "--days",
        help="validity of the serving certificate, in days (the CA gets ten times as long)",
        default=365,
        type=int,
    )


def run(args: argparse.Namespace) -> int:
    """Write the CA and serving certificate, then print the caBundle on standard output."""
    if args.days <= 0:
        logger.error("Invalid --days %s: expected a positive number of days.", args.days)
        return 2
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    hosts = [*service_hosts(args.service, args.namespace), *args.extra_hosts]

    ca = make_ca(days=args.days * 10)
    serving = issue_certificate(
        ca, f"{args.service}.{args.namespace}.svc", hosts=hosts, days=args.days
    )
    ca.write(output / "ca.crt", output / "ca.key")
    serving.write(output / "tls.crt", output / "tls.key")

    logger.info(
        "Wrote a CA and a serving certificate.",
        extra={"directory": str(output), "hosts": ",".join(hosts), "days": args.days},
    )
    print(ca_bundle(ca))
    return 0
