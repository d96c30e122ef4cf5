"""A map UDF that sends each video frame to the next vertex directly, over RDMA.

The vertex's input messages are small JSON events, ``{"camera": "cam-7",
"frame": 123}``, as a camera source or a decoder would emit them. For each
one the UDF makes the frame, a synthetic 1080p RGB image here where a real
UDF would decode one. It sends the frame to the ``infer`` vertex with the
transport and returns a small claim-check message instead of the frame:

    {"frame_id": "...", "sequence": 41, "camera": "cam-7", "frame": 123,
     "bytes": 6220800, "sent": true, "peer": "198.18.0.7:7470", "reason": null}

Why a claim check and not ``Message.to_drop()``: the claim check keeps
Numaflow's own machinery working per frame (acknowledgement, watermarks,
processing-rate metrics and autoscaling of the next vertex), and it records
for every frame whether it was sent and why not, at about 200 bytes in the
inter-step buffer instead of 6.2 MB. Dropping would save those bytes, but the
next vertex's map handler would then never run, and Numaflow would show no
traffic on the edge. A dropped frame still yields a claim check, with
``"sent": false`` and the reason, because delivery is at most once.

Run it as the UDF container's command: ``python send_frames_udf.py``.
"""

from __future__ import annotations

import json
import logging
import threading

import numpy as np
from pynumaflow.mapper import Datum, MapServer, Message, Messages

from numaflow_rdma.transport import PayloadError, Sender

DESTINATION = "infer"
HEIGHT, WIDTH = 1080, 1920

logger = logging.getLogger("send_frames_udf")
_sender: Sender | None = None
_sender_lock = threading.Lock()


def get_sender() -> Sender:
    """Return the process's sender, created on first use.

    It is created lazily, not at import, so that a forking server
    (``MapMultiprocServer``) creates it in each child after the fork.
    """
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = Sender.from_environment(DESTINATION, peer_choice="key_affinity")
        return _sender


def make_frame(camera: str, index: int) -> np.ndarray:
    """Return a synthetic RGB frame; a real UDF decodes one from its input."""
    frame = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    frame[...] = (index * 7 + sum(camera.encode())) % 256
    return frame


def handler(keys: list[str], datum: Datum) -> Messages:
    """Send the frame named by the event, and return its claim check."""
    event = json.loads(datum.value)
    camera = str(event["camera"])
    index = int(event["frame"])
    frame = make_frame(camera, index)
    try:
        result = get_sender().send(frame, metadata={"camera": camera, "frame": index}, key=camera)
    except PayloadError as error:
        logger.error("Frame %d of %s cannot be sent: %s", index, camera, error)
        return Messages(Message.to_drop())
    claim = {
        "frame_id": result.frame_id,
        "sequence": result.sequence,
        "camera": camera,
        "frame": index,
        "bytes": frame.nbytes,
        "sent": result.sent,
        "peer": result.peer,
        "reason": result.reason.value if result.reason else None,
    }
    return Messages(Message(json.dumps(claim).encode(), keys=[camera]))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    MapServer(handler).start()
