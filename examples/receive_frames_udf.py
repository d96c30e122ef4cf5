"""The UDF of the next vertex: it processes the frames that arrive over RDMA.

Frames and the claim checks that describe them travel separately: a frame
goes to the pod the sender chose (by camera, with key affinity), while
Numaflow hands the claim check to whichever pod reads it from the inter-step
buffer. So the work happens in the receiver's handler, on a background
thread, for every frame this pod receives. Here it measures each frame's
mean brightness, where a real UDF would run inference.

The map handler gets the claim checks. It adds this pod's result when the
frame came here, and passes the claim check on either way, so a sink after
this vertex can join sent, received and processed frames, and count what the
at-most-once transport lost.

Run it as the UDF container's command: ``python receive_frames_udf.py``.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from typing import Any

import numpy as np
from pynumaflow.mapper import Datum, MapServer, Message, Messages

from numaflow_rdma.transport import Frame, Receiver

# Results kept for claim checks that arrive after their frames; the oldest go first.
MAX_RESULTS = 4096

logger = logging.getLogger("receive_frames_udf")
_results: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
_results_lock = threading.Lock()


def process_frame(frame: Frame) -> None:
    """Handle one received frame; ``frame.data`` is valid only until this returns."""
    image = frame.data
    brightness = float(np.mean(image))
    result = {"camera": frame.metadata.get("camera"), "brightness": round(brightness, 2)}
    with _results_lock:
        _results[frame.frame_id] = result
        while len(_results) > MAX_RESULTS:
            _results.popitem(last=False)


def handler(keys: list[str], datum: Datum) -> Messages:
    """Pass the claim check on, with this pod's result if the frame came here."""
    claim = json.loads(datum.value)
    with _results_lock:
        result = _results.get(str(claim.get("frame_id")))
    claim["received_here"] = result is not None
    if result is not None:
        claim["result"] = result
    return Messages(Message(json.dumps(claim).encode(), keys=keys))


def start_receiver(**overrides: Any) -> Receiver:
    """Listen on the pod's RDMA address and process frames on a background thread."""
    receiver = Receiver.from_environment(**overrides)
    receiver.serve_in_background(process_frame)
    return receiver


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    start_receiver()
    MapServer(handler).start()
