"""TLS served directly, and the client address taken from X-Forwarded-For only when a trusted
proxy sent it (the address brute-force limits count and the consent page shows)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.conftest import LiveServer, make_settings, run_async

from deviceflow.server.embedded import serve_in_thread


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = tmp / "cert.pem", tmp / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return certfile, keyfile


def _origin_ip(server: LiveServer, client_id: str) -> str:
    """The IP address the server recorded for the newest device authorization of ``client_id``."""
    from sqlalchemy import select

    from deviceflow.storage.sql.engine import create_store
    from deviceflow.storage.sql.tables import device_authorizations as table

    async def main() -> str:
        store = create_store(server.db_url)
        try:
            async with store.engine.connect() as conn:
                rows = await conn.execute(
                    select(table.c.ip_address).where(table.c.client_id == client_id)
                    .order_by(table.c.created_at.desc())
                )
                return str(rows.scalars().first())
        finally:
            await store.close()

    return run_async(main)


def test_tls_served_directly(tmp_path: Path) -> None:
    certfile, keyfile = _self_signed(tmp_path)
    port_settings = make_settings(tmp_path)
    issuer = f"https://127.0.0.1:{port_settings.port}"
    settings = port_settings.model_copy(
        update={"certfile": str(certfile), "keyfile": str(keyfile), "issuer": issuer}
    )
    context = ssl.create_default_context(cafile=str(certfile))
    with serve_in_thread(settings) as base:
        meta = httpx.get(base + "/.well-known/openid-configuration", verify=context).json()
        assert meta["issuer"] == issuer
        assert meta["token_endpoint"] == issuer + "/token"
        # The session cookie is Secure when the issuer is HTTPS.
        page = httpx.get(base + "/device", verify=context)
        assert "secure" in page.headers["set-cookie"].lower()
        with pytest.raises(httpx.ConnectError):
            httpx.get(base + "/healthz")  # the default trust store doesn't know our CA


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [("127.0.0.1", "203.0.113.9"), ("192.0.2.1", "127.0.0.1")],
    ids=["trusted-proxy", "untrusted-peer"],
)
def test_forwarded_for_only_from_trusted_proxies(
    tmp_path: Path, trusted: str, expected: str
) -> None:
    settings = make_settings(tmp_path, forwarded_allow_ips=trusted)
    with serve_in_thread(settings) as base:
        server = LiveServer(issuer=base, db_url=settings.db, settings=settings)
        server.add_client("proxied")
        response = httpx.post(
            base + "/device_authorization", data={"client_id": "proxied"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert response.status_code == 200
        assert _origin_ip(server, "proxied") == expected
