"""The webhook's TLS serving context, reloaded when the certificate files change.

cert-manager renews the serving certificate in its Secret before it expires,
and the kubelet then swaps the files of the mounted Secret volume. A server
that loaded the certificate once keeps presenting the old one until it is
restarted, and every pod creation fails once that one expires. Here the
files are checked at most once per interval, when a new connection requests the
context, and a changed pair is loaded into a new context that later
handshakes use. A pair that fails to load, such as a certificate already
swapped whose key is not yet, leaves the previous context in use until the
next change.

Every blocking read and write on a client connection, the handshake
included, times out after ``CLIENT_IO_TIMEOUT`` seconds. gunicorn's threaded
worker otherwise blocks a thread for as long as a client keeps a connection
open in the middle of a handshake or a request body, so a few such clients
would take every thread and stop admission for the whole cluster.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Stat results of the two files: (inode, size, modification time in ns) each.
_Stamp = tuple[tuple[int, int, int], tuple[int, int, int]]

# Maximum seconds one read or write on a client connection may block. The API
# server sends each AdmissionReview in one piece and waits at most 30 seconds
# for the response (10 by default), so a pause this long means a stalled client.
# NOTE: the limit applies to each operation, not to a whole request, so a client
# that sends one byte every few seconds still holds a thread until it finishes.
CLIENT_IO_TIMEOUT = 5.0


class _DeadlineSocket(ssl.SSLSocket):
    """A server TLS socket whose blocking mode blocks for at most ``CLIENT_IO_TIMEOUT`` seconds.

    gunicorn switches each connection to blocking mode before it reads a
    request, and that would clear a timeout set once. So here blocking mode
    itself carries the timeout.
    """

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(CLIENT_IO_TIMEOUT)
        else:
            super().setblocking(False)


class _DeadlineContext(ssl.SSLContext):
    """A server SSLContext whose connections, handshake included, time out as ``_DeadlineSocket`` does."""

    sslsocket_class = _DeadlineSocket

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        # The new TLS socket takes the timeout of the plain one, so the handshake has it too.
        if sock.gettimeout() is None:
            sock.settimeout(CLIENT_IO_TIMEOUT)
        return super().wrap_socket(sock, *args, **kwargs)


def load_server_context(certificate_path: Path, key_path: Path) -> ssl.SSLContext:
    """Return a TLS 1.2+ server context for the PEM certificate chain and key; raise OSError or SSLError.

    Connections it wraps time out after ``CLIENT_IO_TIMEOUT`` seconds of no progress.
    """
    context = _DeadlineContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(certificate_path), keyfile=str(key_path))
    return context


def certificate_expiry(certificate_path: Path) -> datetime.datetime:
    """Return the end of validity of the first certificate in a PEM file, in UTC."""
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
    return certificate.not_valid_after_utc


class ReloadingServerContext:
    """A server SSLContext that follows changes of its certificate and key files. Thread-safe."""

    def __init__(
        self,
        certificate_path: Path,
        key_path: Path,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Load the pair now; raise OSError, ValueError or ssl.SSLError if it cannot be loaded.

        ``check_interval`` is the least time between two checks of the files, in seconds.
        """
        self.certificate_path = certificate_path
        self.key_path = key_path
        self._check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._read_stamp()
        self._context = load_server_context(certificate_path, key_path)
        self.expires = certificate_expiry(certificate_path)
        self._checked = clock()
        self._failed_stamp: _Stamp | None = None
        self.reloads = 0

    def _read_stamp(self) -> _Stamp:
        def stamp(path: Path) -> tuple[int, int, int]:
            status = os.stat(path)
            return (status.st_ino, status.st_size, status.st_mtime_ns)

        return stamp(self.certificate_path), stamp(self.key_path)

    def context(self) -> ssl.SSLContext:
        """Return the context for a new connection, reloading the files first if they changed."""
        with self._lock:
            now = self._clock()
            if now - self._checked >= self._check_interval:
                self._checked = now
                self._reload_if_changed()
            return self._context

    def is_valid(self) -> bool:
        """Tell whether the loaded certificate is still within its validity period."""
        return datetime.datetime.now(datetime.timezone.utc) < self.expires

    def _reload_if_changed(self) -> None:
        try:
            stamp = self._read_stamp()
        except OSError as error:
            logger.warning(
                "Reading the serving certificate files failed; keeping the loaded pair: %s.", error
            )
            return
        if stamp == self._stamp or stamp == self._failed_stamp:
            return

        try:
            context = load_server_context(self.certificate_path, self.key_path)
            expires = certificate_expiry(self.certificate_path)
        except (OSError, ValueError, ssl.SSLError) as error:
            # Log each bad version of the files once, and try again when they change.
            self._failed_stamp = stamp
            logger.warning(
                "Loading the changed serving certificate failed; keeping the loaded one: %s.",
                error,
                extra={"certificate": str(self.certificate_path), "key": str(self.key_path)},
            )
            return
        self._context = context
        self.expires = expires
        self._stamp = stamp
        self._failed_stamp = None
        self.reloads += 1
        logger.info(
            "Loaded the changed serving certificate.",
            extra={
                "certificate": str(self.certificate_path),
                "expires": expires.isoformat(),
                "pid": os.getpid(),
            },
        )
