"""`dicom_listener`: run the DICOM storage SCP (C-ECHO, C-STORE) in the foreground.

`make run` starts it beside the web server and the worker. SIGTERM or SIGINT stops it cleanly:
it stops accepting, aborts the associations in progress and exits 0.
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.medical.listener import ALL_INTERFACES, StorageListener, tls_context


class Command(BaseCommand):
    help = "Run the DICOM listener (storage SCP: C-ECHO, C-STORE) until SIGTERM/SIGINT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=None, help="TCP port (default: DICOM_PORT, 11112)")
        parser.add_argument("--ae-title", default=None, help="the listener's AE title (default: DICOM_AE_TITLE)")
        parser.add_argument(
            "--bind",
            default=ALL_INTERFACES,
            help="address to listen on (default: every interface, so modalities on the network reach it)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        port = settings.DICOM_PORT if options["port"] is None else options["port"]
        ae_title = (options["ae_title"] or settings.DICOM_AE_TITLE).strip()
        if not 0 <= port <= 65535:
            raise CommandError(f"--port must be 0..65535, not {port}.")
        if not ae_title or len(ae_title) > 16 or "\\" in ae_title:
            raise CommandError("The AE title must be 1 to 16 characters without a backslash.")
        try:
            context = tls_context(cert=settings.DICOM_TLS_CERT, key=settings.DICOM_TLS_KEY, ca=settings.DICOM_TLS_CA)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        _log_to_stderr()
        listener = StorageListener(ae_title=ae_title, port=port, address=options["bind"], ssl_context=context)

        def request_stop(signum: int, frame: FrameType | None) -> None:
            listener.stop()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        try:
            listener.start()
        except OSError as exc:
            raise CommandError(f"Cannot listen on {options['bind']}:{port}: {exc}") from None
        transport = (
            "plain TCP"
            if context is None
            else "DICOM TLS" + (", client certificates required" if settings.DICOM_TLS_CA else "")
        )
        self.stdout.write(
            f"DICOM listener {ae_title} on port {listener.port} ({transport}; C-ECHO, C-STORE); Ctrl-C stops it."
        )
        self.stdout.flush()
        listener.wait()
        self.stdout.write("DICOM listener stopped.")


def _log_to_stderr() -> None:
    """Associations and stored instances are this process's log, whatever LOGGING configures."""
    logger = logging.getLogger("apps.medical.listener")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [dicom] %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)
