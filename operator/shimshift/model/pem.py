"""Checks on registry TLS material before it goes onto a node: a CA is certificates and nothing else,
a client pair is a certificate and the private key that matches it.

A CA file is written world-readable (certs.d/<host>/ca.crt, mode 0644), so whatever it holds is public
on every node: a bundle must consist of PEM `CERTIFICATE` blocks that parse as X.509 certificates, with
only whitespace around them. A private key, an OpenSSH key, a certificate with its key appended or any
other text is refused. Each check returns None when the material is fine, else one sentence saying what
is wrong, which never quotes the material. Pure (the `cryptography` package parses).
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

#: Larger than any real CA bundle (the Mozilla bundle is about 220 KB).
MAX_PEM_BYTES = 1024 * 1024

_BLOCK = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]{1,40})-----\r?\n(?P<body>[A-Za-z0-9+/=:,\- \t\r\n]*?)"
    r"-----END (?P=label)-----"
)
_KEY_LABELS = frozenset({"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"})


def _blocks(text: str) -> tuple[list[tuple[str, str]], str | None]:
    """The PEM blocks of `text` as (label, block text); a problem when anything else is in it."""
    blocks: list[tuple[str, str]] = []
    pos = 0
    for m in _BLOCK.finditer(text):
        if text[pos : m.start()].strip():
            return blocks, _stray(text, pos)
        blocks.append((m.group("label"), m.group(0)))
        pos = m.end()
    if text[pos:].strip():
        return blocks, _stray(text, pos)
    return blocks, None


def _stray(text: str, pos: int) -> str:
    offset = pos + len(text[pos:]) - len(text[pos:].lstrip())
    line = text.count("\n", 0, offset) + 1
    if "PRIVATE KEY" in text[offset:]:
        return f"holds a private key or text that is not a PEM block (from line {line})"
    return f"holds text that is not a PEM block (from line {line}); keep only the -----BEGIN ... blocks"


def _too_big(text: str) -> str | None:
    if len(text.encode("utf-8", "replace")) > MAX_PEM_BYTES:
        return f"is larger than {MAX_PEM_BYTES // 1024} KiB; that is no certificate bundle"
    return None


def _certificates(text: str, what: str) -> tuple[list[x509.Certificate], str | None]:
    problem = _too_big(text)
    if problem:
        return [], problem
    blocks, problem = _blocks(text)
    if problem:
        return [], problem
    if not blocks:
        return [], f"holds no PEM certificate (-----BEGIN CERTIFICATE-----); {what}"
    certs: list[x509.Certificate] = []
    for n, (label, block) in enumerate(blocks, start=1):
        if label != "CERTIFICATE":
            kind = "a private key" if "PRIVATE KEY" in label else "not a certificate"
            return [], f"PEM block {n} is {kind} (-----BEGIN {label}-----); {what}"
        try:
            certs.append(x509.load_pem_x509_certificate(block.encode("ascii")))
        except (ValueError, UnsupportedAlgorithm):
            return [], f"PEM block {n} does not parse as an X.509 certificate"
    return certs, None


def ca_bundle_problem(text: str) -> str | None:
    """None when `text` is one or more X.509 certificates in PEM and nothing else."""
    _, problem = _certificates(text, "a CA bundle holds certificates only")
    return problem


def client_pair_problem(cert_text: str, key_text: str) -> tuple[str, str] | None:
    """None when `cert_text` is a certificate (chain) and `key_text` its private key; else (which, why),
    `which` being "certificate" or "key"."""
    certs, problem = _certificates(cert_text, "the client certificate file holds certificates only")
    if problem:
        return "certificate", problem
    problem = _too_big(key_text)
    if problem:
        return "key", problem
    blocks, problem = _blocks(key_text)
    if problem:
        return "key", problem
    keys = [block for label, block in blocks if label in _KEY_LABELS]
    others = sorted({label for label, _ in blocks if label not in _KEY_LABELS | {"EC PARAMETERS"}})
    if others:
        return "key", (
            f"holds a -----BEGIN {others[0]}----- block, which containerd cannot use; give one PEM "
            "private key (PKCS#8, PKCS#1 or SEC 1)"
        )
    if len(keys) != 1:
        return "key", f"holds {len(keys)} PEM private keys; give exactly one (PKCS#8, PKCS#1 or SEC 1)"
    try:
        key = serialization.load_pem_private_key(keys[0].encode("ascii"), password=None)
    except TypeError:
        return "key", "is encrypted; containerd needs an unencrypted key"
    except (ValueError, UnsupportedAlgorithm):
        return "key", "does not parse as a PEM private key"
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        matches = key.public_key().public_bytes(*spki) == certs[0].public_key().public_bytes(*spki)
    except (ValueError, UnsupportedAlgorithm):
        matches = False
    if not matches:
        return "key", "does not match the certificate (their public keys differ)"
    return None


__all__ = ["MAX_PEM_BYTES", "ca_bundle_problem", "client_pair_problem"]
