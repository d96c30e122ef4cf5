"""The preamble and frame header: round trips and every malformed case."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from numaflow_rdma.transport.errors import PayloadError, ProtocolError
from numaflow_rdma.transport.protocol import (
    MAGIC,
    PREAMBLE_SIZE,
    PROTOCOL_VERSION,
    FrameHeader,
    Kind,
    Memory,
    PayloadKind,
    decode_json,
    decode_preamble,
    descr_dtype,
    dtype_descr,
    encode_preamble,
)


def test_preamble_round_trip() -> None:
    data = encode_preamble(Kind.FRAME, 123, 6_220_800)
    assert len(data) == PREAMBLE_SIZE == 16
    preamble = decode_preamble(data)
    assert preamble.kind is Kind.FRAME
    assert preamble.header_length == 123
    assert preamble.payload_length == 6_220_800


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET / HTTP/1.1\r\n", "magic"),
        (struct.pack("!2sBBIQ", MAGIC, PROTOCOL_VERSION + 1, 1, 0, 0), "protocol version"),
        (struct.pack("!2sBBIQ", MAGIC, PROTOCOL_VERSION, 99, 0, 0), "kind 99"),
        (b"NR", "2 bytes"),
    ],
)
def test_preamble_rejects_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_preamble(data)


def test_json_header_must_be_object() -> None:
    with pytest.raises(ProtocolError, match="expected a JSON object"):
        decode_json(b"[1, 2]", "HELLO")
    with pytest.raises(ProtocolError, match="not UTF-8 JSON"):
        decode_json(b"\xff{", "HELLO")


def _header(**changes: object) -> FrameHeader:
    fields: dict[str, object] = {
        "frame_id": "f1",
        "sequence": 3,
        "sent_at_ns": 10,
        "kind": PayloadKind.ARRAY,
        "memory": Memory.HOST,
        "dtype": "<f4",
        "shape": (2, 3),
        "key": "cam-1",
        "metadata": {"camera": "cam-1", "gain": 1.5},
    }
    fields.update(changes)
    return FrameHeader(**fields)  # type: ignore[arg-type]


def test_frame_header_round_trip() -> None:
    header = _header()
    decoded = FrameHeader.decode(header.encode(), 24)
    assert decoded == header


def test_frame_header_checks_payload_length() -> None:
    with pytest.raises(ProtocolError, match="needs 24 bytes, but the payload has 25"):
        FrameHeader.decode(_header().encode(), 25)


def test_frame_header_rejects_bad_fields() -> None:
    with pytest.raises(ProtocolError, match="'seq'"):
        FrameHeader.decode(b'{"id":"a","seq":true,"ts":1,"kind":"bytes","mem":"host"}', 0)
    with pytest.raises(ProtocolError, match="bytes payload must be in host memory"):
        FrameHeader.decode(b'{"id":"a","seq":1,"ts":1,"kind":"bytes","mem":"cuda"}', 0)
    with pytest.raises(ProtocolError, match="shape"):
        FrameHeader.decode(_header(shape=(-1,)).encode(), 0)
    with pytest.raises(ProtocolError, match="invalid dtype"):
        FrameHeader.decode(_header(dtype="not-a-dtype").encode(), 24)
    with pytest.raises(ProtocolError, match="object dtypes"):
        FrameHeader.decode(_header(dtype="|O").encode(), 48)


def test_structured_dtype_survives_json() -> None:
    dtype = np.dtype([("x", "<i4"), ("y", ">f8", (2,))])
    header = _header(dtype=dtype_descr(dtype), shape=(3,))
    decoded = FrameHeader.decode(header.encode(), 3 * dtype.itemsize)
    assert descr_dtype(decoded.dtype) == dtype


def test_object_arrays_are_refused() -> None:
    with pytest.raises(PayloadError, match="Python objects"):
        dtype_descr(np.dtype(object))
