"""DICOM TLS (PS3.15 Annex B) on the listener: `DICOM_TLS_CERT` + `DICOM_TLS_KEY` make it a TLS
server, `DICOM_TLS_CA` also requires client certificates; unset, it is plain TCP.

Certificates are generated here with `cryptography` (a CA, a server certificate for 127.0.0.1,
a client certificate); the SCU is pynetdicom with an `ssl` context."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import override_settings
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # generated at import

from apps.medical.listener import StorageListener, tls_context
from apps.medical.models import Instance
from apps.medical.services import dicom_node_create
from core.tenancy.actors import Actor
from tests.medical.conftest import CT, dicom_path
from tests.medical.test_listener import LISTENER_AE, MODALITY_AE

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_client_cert: Path  # signed by a CA the listener does not trust
    other_client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, other_ca_key = _key(), _key()
    ca = _certificate("Hospital DICOM CA", ca_key, None, ca=True)
    other_ca = _certificate("Somebody else's CA", other_ca_key, None, ca=True)
    server_key, client_key, other_key = _key(), _key(), _key()
    server = _certificate("tessera", server_key, (ca.subject, ca_key), usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client = _certificate(MODALITY_AE, client_key, (ca.subject, ca_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    other = _certificate(
        MODALITY_AE, other_key, (other_ca.subject, other_ca_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    return Pki(
        ca=_write_cert(ca, folder / "ca.pem"),
        server_cert=_write_cert(server, folder / "server.pem"),
        server_key=_write_key(server_key, folder / "server.key"),
        client_cert=_write_cert(client, folder / "client.pem"),
        client_key=_write_key(client_key, folder / "client.key"),
        other_client_cert=_write_cert(other, folder / "other.pem"),
        other_client_key=_write_key(other_key, folder / "other.key"),
    )


@pytest.fixture
def node(org: Any) -> Any:
    return dicom_node_create(actor=Actor.system(org), ae_title=MODALITY_AE)


@pytest.fixture
def tls_listener(pki: Pki, request: pytest.FixtureRequest) -> Iterator[StorageListener]:
    require_client = getattr(request, "param", False)
    context = tls_context(cert=str(pki.server_cert), key=str(pki.server_key), ca=str(pki.ca) if require_client else "")
    scp = StorageListener(ae_title=LISTENER_AE, port=0, address="127.0.0.1", ssl_context=context)
    scp.start()
    yield scp
    scp.stop()


def _client_context(pki: Pki, *, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca))
    if cert is not None and key is not None:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    return context


def _associate(port: int, context: ssl.SSLContext | None, *files: Path) -> Association:
    ae = AE(ae_title=MODALITY_AE)
    ae.acse_timeout = ae.network_timeout = 5
    ae.add_requested_context(Verification)
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    tls_args = (context, "127.0.0.1") if context is not None else None
    return ae.associate("127.0.0.1", port, ae_title=LISTENER_AE, tls_args=tls_args)


def test_over_tls_a_node_echoes_and_stores(org: Any, node: Any, pki: Pki, tls_listener: StorageListener) -> None:
    # given: an SCU that trusts the hospital CA (server authentication only)
    assoc = _associate(tls_listener.port, _client_context(pki), dicom_path(CT))
    try:
        assert assoc.is_established
        # when
        echo = assoc.send_c_echo()
        store = assoc.send_c_store(dicom_path(CT))
    finally:
        assoc.release()
    # then
    assert (echo.Status, store.Status) == (0x0000, 0x0000)
    assert Instance.objects.filter(organization=org).count() == 1


def test_a_plain_tcp_scu_cannot_associate_with_a_tls_listener(
    org: Any,
    node: Any,
    tls_listener: StorageListener,
) -> None:
    # when
    assoc = _associate(tls_listener.port, None)
    # then
    assert not assoc.is_established


@pytest.mark.parametrize("tls_listener", [True], indirect=True)
def test_with_a_ca_the_listener_requires_a_client_certificate_it_signed(
    org: Any,
    node: Any,
    pki: Pki,
    tls_listener: StorageListener,
) -> None:
    # when: no client certificate, one of another CA, one of the configured CA
    without = _associate(tls_listener.port, _client_context(pki))
    foreign = _associate(tls_listener.port, _client_context(pki, cert=pki.other_client_cert, key=pki.other_client_key))
    signed = _associate(tls_listener.port, _client_context(pki, cert=pki.client_cert, key=pki.client_key))
    # then
    assert not without.is_established
    assert not foreign.is_established
    try:
        assert signed.is_established
        assert signed.send_c_echo().Status == 0x0000
    finally:
        signed.release()


def test_unset_is_plain_tcp_and_half_a_configuration_is_refused(pki: Pki, tmp_path: Path) -> None:
    # then
    assert tls_context(cert="", key="") is None
    with pytest.raises(ImproperlyConfigured, match="both"):
        tls_context(cert=str(pki.server_cert), key="")
    with pytest.raises(ImproperlyConfigured, match="DICOM_TLS_CA needs"):
        tls_context(cert="", key="", ca=str(pki.ca))
    with pytest.raises(ImproperlyConfigured, match="Cannot load"):
        tls_context(cert=str(tmp_path / "missing.pem"), key=str(pki.server_key))
    context = tls_context(cert=str(pki.server_cert), key=str(pki.server_key), ca=str(pki.ca))
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_the_command_refuses_a_key_without_its_certificate(pki: Pki) -> None:
    # when / then
    with (
        override_settings(DICOM_TLS_CERT="", DICOM_TLS_KEY=str(pki.server_key), DICOM_TLS_CA=""),
        pytest.raises(CommandError, match="both DICOM_TLS_CERT and DICOM_TLS_KEY"),
    ):
        call_command("dicom_listener", port=0)
