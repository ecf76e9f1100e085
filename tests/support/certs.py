"""A throwaway CA and the certificates it signs, made in the test (cryptography), for the
runtime's TLS: a real chain a real client verifies, not a stand-in."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Issued:
    ca_pem: bytes  # the CA that signed cert_pem (cert_pem itself when self-signed)
    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path) -> tuple[Path, Path, Path]:
        """tls.crt, tls.key and ca.crt in `directory`, as a mounted TLS Secret holds them."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = (directory / "tls.crt", directory / "tls.key", directory / "ca.crt")
        for path, data in zip(paths, (self.cert_pem, self.key_pem, self.ca_pem), strict=True):
            path.write_bytes(data)
        return paths

    def secret(self, name: str, with_ca: bool = True) -> dict[str, Any]:
        """A kubernetes.io/tls Secret holding these (ca.crt only when `with_ca`)."""
        data = {"tls.crt": self.cert_pem, "tls.key": self.key_pem}
        if with_ca:
            data["ca.crt"] = self.ca_pem
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "type": "kubernetes.io/tls",
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }


CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _sans(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def issue(*names: str, self_signed: bool = False) -> Issued:
    """A server certificate for `names` (DNS names or IP addresses), signed by a new CA, or
    by its own key when `self_signed`."""
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    leaf_key = _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(_sans(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    )
    if self_signed:
        cert = builder.issuer_name(_name(names[0])).sign(leaf_key, hashes.SHA256())
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        return Issued(cert_pem, cert_pem, _pem(leaf_key))
    ca_key = _key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("modelroll test CA"))
        .issuer_name(_name("modelroll test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_USAGE, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = builder.issuer_name(ca.subject).sign(ca_key, hashes.SHA256())
    return Issued(
        ca.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.PEM),
        _pem(leaf_key),
    )


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    """A client that trusts only `ca_pem` and checks the host name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # not the system's CAs
    context.load_verify_locations(cadata=ca_pem.decode())
    return context
