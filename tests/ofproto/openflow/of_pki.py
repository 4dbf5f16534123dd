"""A throw-away PKI made with the openssl CLI: one CA, certificates it signs,
and a rogue CA whose certificates the switch must refuse."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class KeyPair:
    key: str
    cert: str
    ca: str  # the CA certificate that signed ``cert``


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def make_ca(directory: Path, name: str) -> tuple[str, str]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl("req", "-x509", *CURVE, "-keyout", str(key), "-out", str(cert),
             "-subj", f"/CN={name}", "-days", "2")
    return str(key), str(cert)


def make_signed(directory: Path, name: str, ca: tuple[str, str]) -> KeyPair:
    key, csr, cert = (directory / f"{name}.key", directory / f"{name}.csr",
                      directory / f"{name}.pem")
    _openssl("req", "-new", *CURVE, "-keyout", str(key), "-out", str(csr),
             "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", ca[1], "-CAkey", ca[0],
             "-CAcreateserial", "-out", str(cert), "-days", "2")
    return KeyPair(str(key), str(cert), ca[1])


@dataclass(frozen=True)
class Pki:
    switch: KeyPair
    controller: KeyPair
    rogue: KeyPair  # signed by another CA


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(directory, "ca")
    other = make_ca(directory, "rogue-ca")
    return Pki(make_signed(directory, "switch", ca), make_signed(directory, "controller", ca),
               make_signed(directory, "rogue", other))
