"""The DICOM listener: a storage SCP (C-ECHO, C-STORE) on pynetdicom, feeding the same archive
as STOW-RS.

Association acceptance (before any presentation context is negotiated, on `EVT_REQUESTED`):

- the calling AE title must be an active `DicomNode` (`selectors.dicom_node_for_ae_title`); its
  organization is the archive the association stores into;
- when the node has a `host`, the peer's address must be that host (an IP address, or a name
  that resolves to the peer's address);
- the called AE title must be the listener's own (`DICOM_AE_TITLE`; pynetdicom's
  `require_called_aet`).

Otherwise the association is refused with A-ASSOCIATE-RJ, result rejected-permanent, source
service-user, reason calling-AE-title-not-recognised (called-AE-title-not-recognised for the
last check), and nothing of it reaches the archive.

Every storage SOP class is accepted (`dicom_files.STORAGE_SOP_CLASSES`: pynetdicom's
`AllStoragePresentationContexts` and the retired storage classes) in every transfer syntax
pydicom knows (native little/big endian, deflate, JPEG baseline/extended/lossless, JPEG-LS,
JPEG 2000, HTJ2K, RLE, MPEG/HEVC), plus Verification. A C-STORE writes the data set as it was
received (preamble, the association's File Meta Information, the encoded data set: no decode and
re-encode) to a scratch file, hashes it, and hands it to `services.instance_store`, so the
listener and STOW-RS apply one validation, one duplicates policy and one audit. The actor of an
association's audit and PHI access rows is the sending node itself (`node_actor`: label
`dicom-node:<node id>:<AE title>@<peer IP>`, an external-system actor with no user, key or role),
the request id names the association (`dimse:<AE>:<association>`) and the IP column the peer.
The organization's archive policy (duplicates, de-identification on receipt) is read once per
association: a change applies from the next association on.

DICOM TLS (PS3.15 Annex B): with `DICOM_TLS_CERT` and `DICOM_TLS_KEY` the listener accepts TLS
connections only (`tls_context`), with `DICOM_TLS_CA` only those presenting a client certificate
that CA signed; unset, plain TCP.

C-STORE statuses (PS3.4 B.2.3, PS3.7 C):

| outcome                                           | status |
|---------------------------------------------------|--------|
| stored, overwritten, the same bytes again         | 0x0000 |
| duplicate kept (policy "keep"), new copy dropped  | 0xB006 warning, Elements Discarded |
| invalid data set (UIDs missing, pixel data short) | 0xA900 / 0xC000 (the refusal's reason) |
| not a storage SOP class                           | 0x0122 Refused: SOP Class Not Supported |
| duplicate refused (policy "reject")               | 0x0111 Duplicate SOP Instance |
| an error of the archive itself (database, disk)   | 0xA700 Refused: Out of Resources (the sender may retry) |

When an association is released or aborted, the studies it stored new instances into go to the
routing rules (`routing.studies_received_on_receipt`, as the organization's system actor).

Each handler runs in the association's thread: Django database connections are checked
(`close_old_connections`) around every event and the thread's connection is closed when the
association ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import socket
import ssl
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connection
from pydicom._uid_dict import UID_dictionary
from pydicom.dataset import Dataset
from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE, evt, register_uid
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import Verification, uid_to_service_class  # type: ignore[attr-defined]  # generated

from apps.medical.choices import ReceivedVia
from apps.medical.dicom_files import (
    CANNOT_UNDERSTAND,
    DATA_SET_DOES_NOT_MATCH,
    DUPLICATE_SOP_INSTANCE,
    OUT_OF_RESOURCES,
    PROCESSING_FAILURE,
    RETIRED_STORAGE_SOP_CLASSES,
    SOP_CLASS_NOT_SUPPORTED,
    STORAGE_SOP_CLASSES,
    TRANSFER_SYNTAX_NOT_SUPPORTED,
    InstanceRefused,
)
from apps.medical.models import ArchiveSettings, DicomNode
from apps.medical.routing import studies_received_on_receipt, studies_with_new_instances
from apps.medical.selectors import archive_settings_get, dicom_node_for_ae_title
from apps.medical.services import StoreCache, instance_store
from core.audit.context import client_ip_var, request_id_var
from core.storage import scratch_directory
from core.tenancy.actors import Actor
from core.tenancy.choices import Scope

logger = logging.getLogger(__name__)

SUCCESS = 0x0000
# pynetdicom's SCP default is 16 KiB PDUs; larger ones cut the per-PDU overhead of CT-sized
# instances (the requestor still sends at most what it negotiated).
MAXIMUM_PDU_SIZE = 1024 * 1024
MAXIMUM_ASSOCIATIONS = 16
STOP_POLL_INTERVAL_S = 0.2
# Modalities on the network must reach the listener; an unknown calling AE title is refused anyway.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
# A-ASSOCIATE-RJ (PS3.8 9.3.4): result, source, reason
REJECTED_PERMANENT = 0x01
SOURCE_SERVICE_USER = 0x01
CALLING_AE_NOT_RECOGNISED = 0x03

# The refusal reasons `dicom_files` gives, as C-STORE failure statuses. PROCESSING_FAILURE and
# DUPLICATE_SOP_INSTANCE are PS3.7 Annex C general statuses; the others are the Storage Service
# Class's own ranges (A7xx, A9xx, Cxxx) or 0x0122.
_FAILURE_STATUS = {
    CANNOT_UNDERSTAND: 0xC000,
    DATA_SET_DOES_NOT_MATCH: 0xA900,
    SOP_CLASS_NOT_SUPPORTED: 0x0122,
    DUPLICATE_SOP_INSTANCE: 0x0111,
    OUT_OF_RESOURCES: 0xA700,
    TRANSFER_SYNTAX_NOT_SUPPORTED: 0xC122,
    PROCESSING_FAILURE: 0x0110,
}
_ERROR_COMMENT_LENGTH = 64  # Error Comment (0000,0902) is LO


def failure_status(reason: int) -> int:
    """The C-STORE status of a refusal with PS3.18 failure `reason` (0xC000 for any other)."""
    return _FAILURE_STATUS.get(reason, 0xC000)


def store_transfer_syntaxes() -> list[str]:
    """Every transfer syntax pydicom knows (the requestor's proposal order decides which one is used)."""
    return [str(uid) for uid in AllTransferSyntaxes]


def peer_matches(host: str, address: str) -> bool:
    """Whether the peer at `address` is the node's `host` (empty: any peer).

    `host` is an IP address or a name; a name matches when it resolves to the peer's address.
    IPv4-mapped IPv6 addresses (`::ffff:10.0.0.5`) count as their IPv4 address.
    """
    host = host.strip()
    if not host:
        return True
    peer = _ip(address)
    if peer is None:
        return host == address
    expected = _ip(host)
    if expected is not None:
        return expected == peer
    try:
        resolved = {_ip(str(info[4][0])) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return peer in resolved


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        parsed = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def association_node(*, calling_ae_title: str, peer_address: str) -> tuple[DicomNode | None, str]:
    """The node an association from `calling_ae_title` at `peer_address` stores for, or why not.

    Returns (node, "") when accepted, (None, reason) when the association must be refused.
    """
    node = dicom_node_for_ae_title(ae_title=calling_ae_title)
    if node is None:
        return None, "unknown or inactive calling AE title"
    if not peer_matches(node.host, peer_address):
        return None, f"peer address is not the node's host {node.host!r}"
    return node, ""


@dataclass
class _AssociationState:
    """One accepted association: whose archive it stores into, read once at acceptance (the
    node, the organization's archive policy) and the study/series rows it already found."""

    node: DicomNode
    policy: ArchiveSettings
    audit_id: str
    peer: str
    actor: Actor
    cache: StoreCache
    accepted: int = 0  # answered success or warning
    # studies that got a new (or replaced) instance: routed once, when the association ends
    study_ids: set[int] = field(default_factory=set)


class StorageListener:
    """A storage SCP bound to `address`:`port` with AE title `ae_title`.

    `start()` serves in background threads and returns; `wait()` then blocks until `stop()`
    (from a signal handler or another thread).
    """

    def __init__(
        self, *, ae_title: str, port: int, address: str = ALL_INTERFACES, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.ae_title = ae_title
        self.port = port
        self.address = address
        self.ssl_context = ssl_context  # DICOM TLS (see `tls_context`); None: plain TCP
        self._ae = self._build_ae()
        self._server: object | None = None
        self._stop_requested = False
        self._waiting = False
        self._lock = threading.Lock()
        self._associations: weakref.WeakKeyDictionary[Association, _AssociationState] = weakref.WeakKeyDictionary()

    def _build_ae(self) -> AE:
        register_retired_storage_classes()
        ae = AE(ae_title=self.ae_title)
        syntaxes = store_transfer_syntaxes()
        for sop_class in sorted(STORAGE_SOP_CLASSES):  # pynetdicom's current classes and the retired ones
            ae.add_supported_context(sop_class, syntaxes)
        ae.add_supported_context(Verification)
        ae.require_called_aet = True
        ae.maximum_pdu_size = MAXIMUM_PDU_SIZE
        ae.maximum_associations = MAXIMUM_ASSOCIATIONS
        return ae

    @property
    def handlers(self) -> list[tuple[evt.EventType, object]]:
        return [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_RELEASED, self._on_ended),
            (evt.EVT_ABORTED, self._on_ended),
        ]

    def start(self) -> None:
        """Listen in background threads (returns once the port is bound)."""
        server = self._ae.start_server(
            (self.address, self.port),
            block=False,
            ssl_context=self.ssl_context,
            evt_handlers=self.handlers,  # type: ignore[arg-type]  # pynetdicom's handler tuple type is narrower than its runtime
        )
        assert server is not None  # block=False returns the running server
        self._server = server
        self.port = int(server.server_address[1])  # port 0 picks a free one
        logger.info(
            "DICOM listener %s listening on %s:%s (%s)",
            self.ae_title,
            self.address,
            self.port,
            "plain TCP" if self.ssl_context is None else "DICOM TLS",
        )

    def wait(self) -> None:
        """Block until `stop()` is called (a signal handler may call it), then shut down."""
        self._waiting = True
        try:
            # A plain flag polled with sleep, not a threading.Event: Event.set() in a signal
            # handler deadlocks when the signal lands while Event.wait() holds its lock.
            while not self._stop_requested:
                time.sleep(STOP_POLL_INTERVAL_S)
        finally:
            self._shutdown()

    def stop(self) -> None:
        """Stop accepting, abort the associations in progress, release the port.

        While another call waits in `wait()` this only wakes it (safe in a signal handler): the
        shutdown runs there."""
        self._stop_requested = True
        if not self._waiting:
            self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            self._ae.shutdown()
            logger.info("DICOM listener %s stopped", self.ae_title)

    # --- association events ----------------------------------------------------------------------

    def _on_requested(self, event: Event) -> None:
        assoc = event.assoc
        # the requestor's AE title is filled in only during negotiation: read it from the A-ASSOCIATE-RQ
        calling = str(getattr(assoc.requestor.primitive, "calling_ae_title", "") or "").strip()
        peer = str(assoc.requestor.address)
        with _database():
            node, reason = association_node(calling_ae_title=calling, peer_address=peer)
        if node is None:
            logger.warning("Association from AE %r at %s rejected: %s", calling, peer, reason)
            assoc.acse.send_reject(REJECTED_PERMANENT, SOURCE_SERVICE_USER, CALLING_AE_NOT_RECOGNISED)
            # as pynetdicom's own refusals do: wait until the A-ASSOCIATE-RJ is sent and the peer
            # closed (or the ARTIM timer ran out) before the server shuts the socket
            assoc.kill()
            connection.close()
            return
        with _database():
            policy = archive_settings_get(org=node.organization)
        state = _AssociationState(
            node=node,
            policy=policy,
            audit_id=f"dimse:{calling}:{uuid.uuid4().hex[:12]}",
            peer=peer,
            actor=node_actor(node, peer),
            cache=StoreCache(),
        )
        with self._lock:  # association threads add and remove their entries concurrently
            self._associations[assoc] = state
        logger.info("Association from AE %r at %s accepted for organization %s", calling, peer, node.organization.slug)

    def _on_rejected(self, event: Event) -> None:
        # pynetdicom's own refusals, after ours passed: a wrong called AE title, too many associations
        assoc = event.assoc
        with self._lock:
            self._associations.pop(assoc, None)
        logger.warning(
            "Association from AE %r at %s rejected (called AE title %r, this listener is %r; or too many associations)",
            str(assoc.requestor.ae_title).strip(),
            assoc.requestor.address,
            str(getattr(assoc.requestor.primitive, "called_ae_title", "")).strip(),
            self.ae_title,
        )
        connection.close()

    def _on_ended(self, event: Event) -> None:
        with self._lock:
            state = self._associations.pop(event.assoc, None)
        if state is not None:
            logger.info(
                "Association from AE %r at %s ended: %d instance(s) accepted",
                state.node.ae_title,
                state.peer,
                state.accepted,
            )
            if state.study_ids:
                # once per association, after its last instance: a study sent as 300 C-STOREs
                # is analysed once (routing never raises: a store already answered stays stored)
                with _database(), _audit_context(state):
                    studies_received_on_receipt(actor=Actor.system(state.node.organization), study_ids=state.study_ids)
        connection.close()  # this association thread's connection

    def _on_echo(self, event: Event) -> int:
        return SUCCESS

    def _on_store(self, event: Event) -> Dataset:
        with self._lock:
            state = self._associations.get(event.assoc)
        if state is None:  # cannot happen: only accepted associations get here
            return _status(0x0124, "Not authorized.")
        sop_uid = str(getattr(event.request, "AffectedSOPInstanceUID", "") or "")
        try:
            with _database(), _audit_context(state), scratch_directory(prefix="cstore-") as folder:
                encoded = event.encoded_dataset()
                path = folder / "instance.dcm"
                path.write_bytes(encoded)
                outcome = instance_store(
                    actor=state.actor,
                    path=path,
                    sha256=hashlib.sha256(encoded).hexdigest(),
                    size=len(encoded),
                    received_via=ReceivedVia.CSTORE,
                    archive_settings=state.policy,
                    cache=state.cache,
                )
        except InstanceRefused as refusal:
            status = failure_status(refusal.reason)
            logger.warning(
                "C-STORE %s from AE %r refused (0x%04X): %s", sop_uid, state.node.ae_title, status, refusal.message
            )
            return _status(status, refusal.message)
        except Exception:
            logger.exception("C-STORE %s from AE %r failed", sop_uid, state.node.ae_title)
            return _status(0xA700, "The archive could not store the instance.")
        state.accepted += 1
        state.study_ids |= studies_with_new_instances([outcome])
        if outcome.warning_reason is not None:
            logger.info("C-STORE %s from AE %r: %s", sop_uid, state.node.ae_title, outcome.warning)
            return _status(outcome.warning_reason, outcome.warning)
        logger.info("C-STORE %s from AE %r: %s", sop_uid, state.node.ae_title, outcome.status)
        return _status(SUCCESS)


def tls_context(*, cert: str, key: str, ca: str = "") -> ssl.SSLContext | None:
    """The listener's DICOM TLS context (PS3.15 Annex B, the BCP 195 profiles), or None for plain TCP.

    `cert` and `key` (PEM paths, both or neither) make the listener a TLS server, TLS 1.2 or
    later with Python's default cipher suites. `ca` (a PEM bundle) additionally requires every
    calling node to present a client certificate signed by it (mutual TLS); a node without one
    fails the handshake before any association. The calling AE title is still checked against
    the registered nodes. Missing or unreadable files are an `ImproperlyConfigured`.
    """
    if not cert and not key:
        if ca:
            raise ImproperlyConfigured("DICOM_TLS_CA needs DICOM_TLS_CERT and DICOM_TLS_KEY.")
        return None
    if not cert or not key:
        raise ImproperlyConfigured("DICOM TLS needs both DICOM_TLS_CERT and DICOM_TLS_KEY.")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
        if ca:
            context.load_verify_locations(cafile=ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ImproperlyConfigured(f"Cannot load the DICOM TLS certificate, key or CA: {exc}") from None
    return context


def register_retired_storage_classes() -> None:
    """Make pynetdicom handle C-STORE for the retired storage SOP classes.

    pynetdicom knows only the current storage classes: for any other abstract syntax its service
    dispatcher has no C-STORE handler, so the association would accept the context and then fail
    the request. Registering each retired class (pydicom's keyword, e.g.
    `UltrasoundImageStorageRetired`) with its Storage Service Class, once per process, fixes that.
    """
    for uid in sorted(RETIRED_STORAGE_SOP_CLASSES):
        if uid_to_service_class(uid) is not StorageServiceClass:
            register_uid(uid, UID_dictionary[uid][4], StorageServiceClass)


def node_actor(node: DicomNode, peer: str) -> Actor:
    """The sending DICOM node as the actor of what it stores: audit and PHI access rows name it
    `dicom-node:<node id>:<calling AE title>@<peer IP>` (an external-system actor: no user, no
    key, no role; the `medical` scope only)."""
    ip = _ip(peer)
    host = str(ip) if ip is not None else peer.rsplit(":", 1)[0]
    return Actor.for_external_system(
        organization=node.organization,
        label=f"dicom-node:{node.pk}:{node.ae_title}@{host}",
        scopes=frozenset({Scope.MEDICAL}),
    )


def _status(code: int, comment: str = "") -> Dataset:
    response = Dataset()
    response.Status = code
    if comment and code != SUCCESS:
        response.ErrorComment = comment[:_ERROR_COMMENT_LENGTH]
    return response


@contextlib.contextmanager
def _database() -> Iterator[None]:
    """Django's request-boundary connection hygiene, for one pynetdicom event."""
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


@contextlib.contextmanager
def _audit_context(state: _AssociationState) -> Iterator[None]:
    """Audit rows written while storing name the calling AE (request id) and the peer (IP)."""
    request_token = request_id_var.set(state.audit_id)
    ip_token = client_ip_var.set(str(_ip(state.peer)) if _ip(state.peer) is not None else None)
    try:
        yield
    finally:
        request_id_var.reset(request_token)
        client_ip_var.reset(ip_token)
