"""The transport's exceptions.

Errors from sockets, UCX and DNS are translated into these at the edge of the
library, so a UDF catches one hierarchy whatever the backend::

    TransportError
    ├── TransportConfigError        invalid settings or pod environment
    ├── BackendUnavailableError     the requested backend cannot be loaded
    ├── TransportClosedError        the sender or receiver is closed
    ├── PayloadError                a payload or its metadata cannot be sent
    │   └── FrameTooLargeError      larger than the receiver accepts
    ├── DiscoveryError              a DNS lookup failed
    │   └── NameNotFoundError       the name does not exist (NXDOMAIN)
    ├── ProtocolError               a peer sent a malformed message
    └── PeerConnectionError         a connection to one peer failed
        ├── ConnectionLostError     the peer closed, died or went silent
        └── HandshakeError          the handshake did not complete
            └── HandshakeRejectedError   the peer rejected the handshake

A frame that cannot be delivered is not an error: ``send`` returns a
``SendResult`` with the drop reason, because delivery is at most once.
"""

from __future__ import annotations


class TransportError(Exception):
    """Base class of every error the transport raises."""


class TransportConfigError(TransportError, ValueError):
    """Invalid settings, or a pod environment that lacks what the transport needs."""


class BackendUnavailableError(TransportError):
    """The requested backend cannot be loaded, for example ``ucx`` without ``ucxx``."""


class TransportClosedError(TransportError):
    """An operation on a sender or receiver that has been closed."""


class PayloadError(TransportError, TypeError):
    """A payload or metadata dict that the transport cannot send."""


class FrameTooLargeError(PayloadError):
    """A frame larger than the receiver's maximum frame size."""

    def __init__(self, message: str, nbytes: int, limit: int) -> None:
        super().__init__(message)
        self.nbytes = nbytes
        self.limit = limit


class DiscoveryError(TransportError):
    """A DNS lookup of a destination failed (SERVFAIL, timeout, no nameserver)."""


class NameNotFoundError(DiscoveryError):
    """The destination name does not exist in DNS (NXDOMAIN)."""


class ProtocolError(TransportError):
    """A message that does not follow the wire protocol."""


class PeerConnectionError(TransportError):
    """A connection to one peer failed."""

    def __init__(self, message: str, peer: str = "") -> None:
        super().__init__(message)
        self.peer = peer


class ConnectionLostError(PeerConnectionError):
    """The peer closed the connection, died, or sent nothing for too long."""


class HandshakeError(PeerConnectionError):
    """The handshake with a peer did not complete."""


class HandshakeRejectedError(HandshakeError):
    """The peer rejected the handshake and sent its reason."""

    def __init__(self, message: str, peer: str = "", reason: str = "") -> None:
        super().__init__(message, peer)
        self.reason = reason
