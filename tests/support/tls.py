"""A certificate authority made by the test, and a server certificate it signs for loopback
(``127.0.0.1``, ``::1``, ``localhost``), written as PEM files for ``deviceflow serve --certfile
--keyfile`` and for the clients that must trust the CA.

trustme (python-trio) does the X.509 work: a CA with ``basicConstraints CA:TRUE`` and key usage,
and a leaf with the subjectAltNames clients check (Node's TLS and OpenSSL match IP addresses only
against iPAddress entries).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class TestTls:
    """The PEM files of a test CA and of a server certificate it signed."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    ca_file: Path
    """The CA certificate: what a client trusts (``NODE_EXTRA_CA_CERTS``, ``verify=``)."""
    cert_file: Path
    """The server certificate followed by its chain (``--certfile``)."""
    key_file: Path
    """The server's private key (``--keyfile``)."""

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the test CA only (and checks host names)."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_test_tls(directory: Path, names: tuple[str, ...] = LOOPBACK_NAMES) -> TestTls:
    """Make a fresh CA and a server certificate for ``names`` under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="deviceflow interop test CA")
    leaf = ca.issue_cert(*names)
    tls = TestTls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(tls.ca_file))
    tls.cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(tls.key_file))
    tls.key_file.chmod(0o600)
    return tls


__all__ = ["LOOPBACK_NAMES", "TestTls", "make_test_tls"]
