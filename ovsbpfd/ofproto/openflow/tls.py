"""TLS for ssl:/pssl: OpenFlow targets, with the Open_vSwitch.ssl certificates.

As in Open vSwitch, both ends must show a certificate signed by ``ca_cert``
(a switch listening on pssl: asks for and checks the client's certificate
too), and host names are not checked: the CA is the trust anchor.
``bootstrap_ca_cert`` (learning the CA from the first peer) is not
supported; a missing ca_cert file is an error like any other.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass


class TlsConfigError(Exception):
    """The SSL settings cannot make a TLS context (say why, for logs)."""


@dataclass(frozen=True)
class SslSettings:
    """The Open_vSwitch.ssl row (file names)."""

    private_key: str = ""
    certificate: str = ""
    ca_cert: str = ""
    bootstrap_ca_cert: bool = False


def _check_files(settings: SslSettings | None) -> SslSettings:
    if settings is None:
        raise TlsConfigError("SSL is not configured (ovs-vsctl set-ssl)")
    for what, path in (("private key", settings.private_key),
                       ("certificate", settings.certificate),
                       ("CA certificate", settings.ca_cert)):
        if not path:
            raise TlsConfigError(f"{what} must be configured to use SSL")
        if not os.path.exists(path):
            hint = " (bootstrap_ca_cert is not supported)" if (
                path == settings.ca_cert and settings.bootstrap_ca_cert) else ""
            raise TlsConfigError(f"{what} {path}: {os.strerror(2)}{hint}")
    return settings


def make_context(settings: SslSettings | None, server_side: bool) -> ssl.SSLContext:
    """A context that shows our certificate and requires a CA-signed peer."""
    s = _check_files(settings)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(s.certificate, s.private_key)
        ctx.load_verify_locations(cafile=s.ca_cert)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsConfigError(f"cannot load SSL files: {exc}") from exc
    return ctx
