"""The wire protocol, the same over every backend.

Every message is a 16-byte preamble, then an optional header, then an
optional payload::

    preamble  magic "NR" | version u8 | kind u8 | header length u32 | payload length u64
    header    UTF-8 JSON object, at most the receiver's maximum header size
    payload   raw frame bytes, host or device memory

All integers are big-endian. Both backends write preamble and header back to
back on one TCP stream. The tcp backend writes the payload after them. The
ucx backend sends the payload as one tagged UCX message instead, once the
handshake granted it (see ``backends.ucx``). The lengths in the preamble are
checked against the receiver's limits before any buffer is allocated for the
header or the payload.

A connection opens with the handshake (HELLO, CHALLENGE, AUTH, then WELCOME
or REJECT; see ``handshake``). Afterwards the sender sends FRAME and
HEARTBEAT messages, and the receiver sends CREDIT and HEARTBEAT messages.
Either side may send GOODBYE before it closes.
"""

from __future__ import annotations

import enum
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from numaflow_rdma import jsontext
from numaflow_rdma.transport.errors import PayloadError, ProtocolError

MAGIC = b"NR"
PROTOCOL_VERSION = 1
PREAMBLE = struct.Struct("!2sBBIQ")
PREAMBLE_SIZE = PREAMBLE.size

# Handshake and control messages are small; a larger header before the
# handshake completes is rejected without reading it.
MAX_CONTROL_HEADER_SIZE = 4096
DEFAULT_MAX_HEADER_SIZE = 64 * 1024


class Kind(enum.IntEnum):
    """The type of a message, the fourth byte of its preamble."""

    HELLO = 1
    CHALLENGE = 2
    AUTH = 3
    WELCOME = 4
    REJECT = 5
    FRAME = 6
    CREDIT = 7
    HEARTBEAT = 8
    GOODBYE = 9


class PayloadKind(str, enum.Enum):
    """The type in which the receiver presents a frame's payload."""

    BYTES = "bytes"
    """A ``memoryview`` of unsigned bytes."""
    ARRAY = "array"
    """An array with the sender's dtype and shape."""


class Memory(str, enum.Enum):
    """The memory a payload lives in."""

    HOST = "host"
    CUDA = "cuda"


@dataclass(frozen=True, slots=True)
class Preamble:
    """The fixed-size start of every message."""

    kind: Kind
    header_length: int
    payload_length: int


def encode_preamble(kind: Kind, header_length: int = 0, payload_length: int = 0) -> bytes:
    """Return the 16-byte preamble of a message."""
    return PREAMBLE.pack(MAGIC, PROTOCOL_VERSION, int(kind), header_length, payload_length)


def decode_preamble(data: bytes | bytearray | memoryview) -> Preamble:
    """Parse a preamble; raise ProtocolError when it is not one of this protocol's.

    The lengths are returned unchecked: the caller compares them with its own
    limits, which differ between the handshake and frames.
    """
    if len(data) != PREAMBLE_SIZE:
        raise ProtocolError(f"invalid preamble: {len(data)} bytes, expected {PREAMBLE_SIZE}")
    magic, version, kind, header_length, payload_length = PREAMBLE.unpack(data)
    if magic != MAGIC:
        raise ProtocolError(
            f"invalid preamble: magic {bytes(magic)!r}, expected {MAGIC!r}; "
            "the peer does not speak this protocol"
        )
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {version}, expected {PROTOCOL_VERSION}; "
            "upgrade numaflow-rdma on both vertices to the same release"
        )
    try:
        message_kind = Kind(kind)
    except ValueError:
        raise ProtocolError(f"invalid message kind {kind} in preamble") from None
    return Preamble(message_kind, header_length, payload_length)


def encode_json(document: Mapping[str, Any]) -> bytes:
    """Return the compact UTF-8 JSON of a header."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_json(data: bytes | bytearray | memoryview, what: str) -> dict[str, Any]:
    """Parse a header that must be a JSON object; raise ProtocolError naming ``what``."""
    try:
        document = jsontext.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError(f"invalid {what} header: not UTF-8 JSON ({error})") from error
    if not isinstance(document, dict):
        raise ProtocolError(
            f"invalid {what} header: expected a JSON object, got {type(document).__name__}"
        )
    return document


def require_field(document: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    """Return ``document[name]`` if it has type ``kind``; raise ProtocolError otherwise."""
    value = document.get(name)
    # bool is an int subclass, and a flag where a count belongs is a malformed message.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(
            f"invalid {what} header: field {name!r} is {value!r}, expected {kind.__name__}"
        )
    return value


def dtype_descr(dtype: np.dtype[Any]) -> str | list[Any]:
    """Return a JSON-safe description of a NumPy dtype, structured dtypes included."""
    if dtype.hasobject:
        raise PayloadError(
            f"arrays of dtype {dtype} hold Python objects and cannot be sent; "
            "convert them to a numeric dtype"
        )
    descr: str | list[Any] = np.lib.format.dtype_to_descr(dtype)
    return descr


def descr_dtype(descr: Any) -> np.dtype[Any]:
    """Return the dtype a ``dtype_descr`` value describes; raise ProtocolError if invalid."""
    try:
        if isinstance(descr, list):
            descr = [tuple(item) if isinstance(item, list) else item for item in descr]
        dtype: np.dtype[Any] = np.lib.format.descr_to_dtype(descr)
    except (TypeError, ValueError, KeyError) as error:
        raise ProtocolError(f"invalid dtype {descr!r} in frame header: {error}") from error
    if dtype.hasobject:
        raise ProtocolError(f"invalid dtype {descr!r} in frame header: object dtypes are not sent")
    return dtype


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The description of a frame that precedes its payload."""

    frame_id: str
    sequence: int
    sent_at_ns: int
    kind: PayloadKind
    memory: Memory
    dtype: str | list[Any] | None = None
    shape: tuple[int, ...] | None = None
    key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        """Return the JSON header of this frame."""
        document: dict[str, Any] = {
            "id": self.frame_id,
            "seq": self.sequence,
            "ts": self.sent_at_ns,
            "kind": self.kind.value,
            "mem": self.memory.value,
        }
        if self.kind is PayloadKind.ARRAY:
            document["dtype"] = self.dtype
            document["shape"] = list(self.shape or ())
        if self.key is not None:
            document["key"] = self.key
        if self.metadata:
            document["meta"] = self.metadata
        return encode_json(document)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, payload_length: int) -> FrameHeader:
        """Parse and check a frame header against the payload length of its preamble."""
        document = decode_json(data, "frame")
        frame_id = require_field(document, "id", str, "frame")
        sequence = require_field(document, "seq", int, "frame")
        sent_at_ns = require_field(document, "ts", int, "frame")
        try:
            kind = PayloadKind(document.get("kind"))
            memory = Memory(document.get("mem"))
        except ValueError as error:
            raise ProtocolError(f"invalid frame header: {error}") from error
        metadata = document.get("meta", {})
        if not isinstance(metadata, dict):
            raise ProtocolError(f"invalid frame header: 'meta' is {metadata!r}, expected an object")
        key = document.get("key")
        if key is not None and not isinstance(key, str):
            raise ProtocolError(f"invalid frame header: 'key' is {key!r}, expected a string")

        header = cls(frame_id, sequence, sent_at_ns, kind, memory, key=key, metadata=metadata)
        if kind is PayloadKind.BYTES:
            if memory is not Memory.HOST:
                raise ProtocolError("invalid frame header: a bytes payload must be in host memory")
            return header
        return _with_array_layout(header, document, payload_length)


def _with_array_layout(
    header: FrameHeader, document: Mapping[str, Any], payload_length: int
) -> FrameHeader:
    descr = document.get("dtype")
    dtype = descr_dtype(descr)
    shape = document.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape
    ):
        raise ProtocolError(
            f"invalid frame header: 'shape' is {shape!r}, expected non-negative ints"
        )
    expected = dtype.itemsize * math.prod(shape)
    if expected != payload_length:
        raise ProtocolError(
            f"invalid frame header: shape {shape} of {dtype} needs {expected} bytes, "
            f"but the payload has {payload_length}"
        )
    return FrameHeader(
        header.frame_id,
        header.sequence,
        header.sent_at_ns,
        header.kind,
        header.memory,
        dtype=descr,
        shape=tuple(shape),
        key=header.key,
        metadata=header.metadata,
    )
