"""Throwaway TLS material for tests: fixed certificates (valid 2026-2126, so golden files stay put) and
`fresh_*` generators, plus keys that must never pass as registry material (an OpenSSH key, a PEM RSA key).

None of these keys protects anything; they exist only so the registry checks see real X.509 and real
keys instead of placeholder text.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

CA_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBTjCB9aADAgECAhRgHAzdyHj5K87JMpgzVWHRUukwbzAKBggqhkjOPQQDAjAc
MRowGAYDVQQDDBFzaGltc2hpZnQgdGVzdCBDQTAgFw0yNjAxMDEwMDAwMDBaGA8y
MTI2MDEwMTAwMDAwMFowHDEaMBgGA1UEAwwRc2hpbXNoaWZ0IHRlc3QgQ0EwWTAT
BgcqhkjOPQIBBggqhkjOPQMBBwNCAARy2TTm3WJPYClfZJAJvGVwXCIM1OYav7/E
fYyQskXXJyCa18f9JHoATmGnpYJeFDGKKq45lnQ8JU6k4oCgsmq+oxMwETAPBgNV
HRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQCit14NCJXJ78pACetklqF2
933l+ZrppZuwXDkNNn8MJAIgGad13O8eE0ptOR/k4wFi3icIeY2Z96ZlDfhMUyBK
Pzs=
-----END CERTIFICATE-----
"""

CA2_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBUzCB+aADAgECAhQOi9s76mA7xG2RqrFyLsBTzOWQUTAKBggqhkjOPQQDAjAe
MRwwGgYDVQQDDBNzaGltc2hpZnQgdGVzdCBDQSAyMCAXDTI2MDEwMTAwMDAwMFoY
DzIxMjYwMTAxMDAwMDAwWjAeMRwwGgYDVQQDDBNzaGltc2hpZnQgdGVzdCBDQSAy
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECubgkuY7WnUgCYYXuYQ7cCzVGID9
NRguq/e3WWJeUmvwIe0JZudGURJwInYT3w3IuaPyEHFN9LSVI/8swpFVD6MTMBEw
DwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEA/ZPu2jPZeeRF9VYZ
1Q/PV3IrHJ998Ovcxtk2G/Z7rJUCIQDb9qF2QGcjzT5oCm2U0RBbzwNBESbu57uu
Nj008Cq1sA==
-----END CERTIFICATE-----
"""

CLIENT_CERT_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBPjCB5KADAgECAhQkOuvwBDONGdffDKHcfDg7k3oe4jAKBggqhkjOPQQDAjAc
MRowGAYDVQQDDBFzaGltc2hpZnQgdGVzdCBDQTAgFw0yNjAxMDEwMDAwMDBaGA8y
MTI2MDEwMTAwMDAwMFowIDEeMBwGA1UEAwwVc2hpbXNoaWZ0IHRlc3QgY2xpZW50
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEDj7u49OEZBqAJYLplOsyZLC8v6Or
Rbckk2PK4N8oeIrt9NJxCNQ5P3DN38DyI09uU0I4CnceeMgKjzU8qJ44KDAKBggq
hkjOPQQDAgNJADBGAiEAnvSahIgTHkaIHJpzfT1Bv4o9cdfcRwy1MS3TPQyyEdsC
IQDQtwb2f/q7VxipVhJULHGk0r3PYCwizDR92iB59P75hw==
-----END CERTIFICATE-----
"""

CLIENT_KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4ySNDCW8Y+szzonY
96/meoqakAt+2w5h8oXzEX0RIVihRANCAAQOPu7j04RkGoAlgumU6zJksLy/o6tF
tySTY8rg3yh4iu300nEI1Dk/cM3fwPIjT25TQjgKdx54yAqPNTyonjgo
-----END PRIVATE KEY-----
"""


def openssh_private_key() -> str:
    """A fresh ed25519 key in OpenSSH format, as `ssh-keygen` writes it (the SSH Secret's content)."""
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()


def rsa_private_key() -> str:
    """A fresh RSA key in PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`), as older ssh-keygen writes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def fresh_pair(cn: str = "shimshift test client") -> tuple[str, str]:
    """A fresh self-signed certificate and its PKCS#8 key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem
