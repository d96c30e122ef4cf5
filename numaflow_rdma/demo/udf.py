"""The UDF processes of the demo pipeline: ``python -m numaflow_rdma.demo.udf ROLE ...``.

The demo starts one per vertex pod, inside the pod's network namespace, with
the environment the kubelet would give the pod's UDF container. Everything
about the transport comes from that environment, through
``Sender.from_environment`` and ``Receiver.from_environment``. The command
line only carries what is not in the pod: the DNS server (CoreDNS on the
simulated network's gateway, on its own port), the backend, the journal file
and the workload.

- ``decode`` sends 1080p RGB frames from its share of the cameras to
  ``infer``, one stream id per camera clip, with key affinity.
- ``infer`` checks each frame's CRC-32 against its metadata, computes the
  mean brightness, and sends that result to ``out``.
- ``out`` receives the results.

Each process writes its events to the journal (see ``journal``) and ends on
SIGTERM or SIGINT, or for ``decode`` when its cameras have sent every frame.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from numaflow_rdma import names
from numaflow_rdma.demo import photos
from numaflow_rdma.demo.journal import Journal

logger = logging.getLogger("numaflow_rdma.demo.udf")

ROLES = ("decode", "infer", "out")

# How long a receiver's close waits for frames that senders are still sending, in seconds.
CLOSE_TIMEOUT = 3.0
# Seconds a decode process waits until it is connected to every receiver DNS lists.
RECEIVER_WAIT = 15.0


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line of one UDF process."""
    parser = argparse.ArgumentParser(prog="python -m numaflow_rdma.demo.udf")
    parser.add_argument("role", choices=ROLES, help="which vertex's UDF to run")
    parser.add_argument("--journal", required=True, help="JSON-lines file for the events")
    parser.add_argument(
        "--nameserver", required=True, help="DNS server for vertex names, as ip:port"
    )
    parser.add_argument("--backend", default="auto", help="transport backend: auto, tcp or ucx")
    parser.add_argument("--cameras", type=int, default=1, help="cameras of the whole pipeline")
    parser.add_argument(
        "--replicas", type=int, default=1, help="replicas of this vertex, to split the cameras"
    )
    parser.add_argument("--fps", type=float, default=5.0, help="frames per second per camera")
    parser.add_argument("--frames", type=int, default=10, help="frames each camera sends")
    parser.add_argument(
        "--clip-frames",
        type=int,
        default=0,
        help="frames per clip; each clip is a stream with its own id (0: one per camera)",
    )
    return parser.parse_args(argv)


def stream_id(camera: str, index: int, clip_frames: int) -> str:
    """Return the stream id of frame ``index`` of ``camera``: the camera, or its clip."""
    if clip_frames <= 0:
        return camera
    return f"{camera}-clip-{index // clip_frames}"


def my_cameras(total: int, replicas: int, replica: int) -> list[int]:
    """Return the camera numbers this replica serves: every ``replicas``-th from its index."""
    return [camera for camera in range(total) if camera % replicas == replica]


def own_name() -> str:
    """Return ``<vertex>/<pod>``, the name this UDF gives itself in the transport's handshake.

    The transport's default uses the host name, which is the pod name in
    Kubernetes but this machine's name in the demo's network namespaces.
    """
    return f"{os.environ.get('NUMAFLOW_VERTEX_NAME', '')}/{os.environ.get('NUMAFLOW_POD', '')}"


class Stop:
    """Set by SIGTERM and SIGINT, as the kubelet stops a container."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ""
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.signal_name = signal.Signals(signum).name
        self.event.set()

    @property
    def requested(self) -> bool:
        """Return True once a stop signal arrived."""
        return self.event.is_set()


def run_decode(args: argparse.Namespace, journal: Journal, stop: Stop) -> None:
    """Send every camera's frames to ``infer`` at the frame rate, then close."""
    from numaflow_rdma.transport import Sender

    replica = int(os.environ.get("NUMAFLOW_REPLICA", "0"))
    cameras = [photos.Camera(number) for number in my_cameras(args.cameras, args.replicas, replica)]
    sender = Sender.from_environment(
        "infer",
        nameserver=args.nameserver,
        backend=args.backend,
        name=own_name(),
        peer_choice="key_affinity",
    )
    try:
        connected = wait_for_listed_receivers(sender, stop)
        journal.write(
            "ready",
            cameras=[camera.name for camera in cameras],
            photographs=[photos.photograph_name(camera.number) for camera in cameras],
            receivers=connected,
        )
        send_frames(args, cameras, sender, journal, stop)
    finally:
        sender.close(timeout=CLOSE_TIMEOUT)
        journal.write("exit", metrics=sender.metrics.snapshot(), signal=stop.signal_name)


def wait_for_listed_receivers(sender: Any, stop: Stop) -> list[str]:
    """Wait until every receiver DNS lists is connected, so the first streams spread over all."""
    deadline = time.monotonic() + RECEIVER_WAIT
    while time.monotonic() < deadline and not stop.requested:
        peers = sender.peers()
        if peers and all(state == "ready" for state in peers.values()):
            break
        time.sleep(0.1)
    return sorted(peer for peer, state in sender.peers().items() if state == "ready")


def send_frames(
    args: argparse.Namespace, cameras: list[photos.Camera], sender: Any, journal: Journal, stop: Stop
) -> None:
    """Send frame after frame of every camera, each at its time, until all are sent or a stop."""
    period = 1.0 / args.fps
    started = time.monotonic()
    for index in range(args.frames):
        for position, camera in enumerate(cameras):
            # Cameras are spread over the frame period, as independent cameras would be.
            due = started + (index + position / max(len(cameras), 1)) * period
            if stop.event.wait(max(0.0, due - time.monotonic())):
                return
            frame = camera.frame(index)
            stream = stream_id(camera.name, index, args.clip_frames)
            metadata = {
                "camera": camera.name,
                "stream": stream,
                "index": index,
                "crc32": photos.checksum(frame),
            }
            result = sender.send(frame, metadata=metadata, key=stream)
            journal.write(
                "frame",
                camera=camera.name,
                stream=stream,
                index=index,
                sent=result.sent,
                peer=result.peer,
                reason=result.reason.value if result.reason else None,
                nbytes=frame.nbytes,
            )


def check_frame(frame: Any) -> tuple[bool, str]:
    """Check a received frame's shape, type and CRC-32; return whether it passed and why not."""
    data = frame.data
    if not isinstance(data, np.ndarray):
        return False, f"payload is {type(data).__name__}, expected a NumPy array"
    if data.shape != photos.FRAME_SHAPE or data.dtype != np.uint8:
        return False, f"frame is {data.dtype}{list(data.shape)}, expected uint8{list(photos.FRAME_SHAPE)}"
    expected = frame.metadata.get("crc32")
    actual = photos.checksum(data)
    if actual != expected:
        return False, f"CRC-32 is {actual}, the sender's was {expected}"
    return True, ""


def run_infer(args: argparse.Namespace, journal: Journal, stop: Stop) -> None:
    """Check every frame, compute its brightness and send the result to ``out``, until stopped."""
    from numaflow_rdma.transport import Receiver, Sender

    receiver = Receiver.from_environment(backend=args.backend, name=own_name())
    results = Sender.from_environment(
        "out", nameserver=args.nameserver, backend=args.backend, name=own_name()
    )
    pod = os.environ.get("NUMAFLOW_POD", "")
    journal.write("ready", address=receiver.host, port=receiver.port, pod=pod)
    try:
        receive_until_stopped(receiver, stop, lambda frame: handle_frame(frame, results, journal))
    finally:
        results.close(timeout=CLOSE_TIMEOUT)
        journal.write(
            "exit",
            metrics=receiver.metrics.snapshot(),
            result_metrics=results.metrics.snapshot(),
            signal=stop.signal_name,
        )


def handle_frame(frame: Any, results: Any, journal: Journal) -> None:
    """Check one frame, record it, and send its brightness to ``out``."""
    passed, problem = check_frame(frame)
    brightness = photos.mean_brightness(frame.data) if passed else None
    metadata = frame.metadata
    journal.write(
        "frame",
        camera=metadata.get("camera"),
        stream=metadata.get("stream"),
        index=metadata.get("index"),
        key=frame.key,
        sender=frame.sender,
        nbytes=frame.nbytes,
        passed=passed,
        problem=problem,
        brightness=brightness,
        latency=frame.latency,
    )
    # The receive buffer goes back before the result is sent, so the sender's credit returns sooner.
    frame.release()
    if passed:
        outcome = results.send(
            np.array([brightness], dtype=np.float32),
            metadata={"camera": metadata.get("camera"), "index": metadata.get("index")},
        )
        journal.write("result", sent=outcome.sent, reason=outcome.reason.value if outcome.reason else None)


def receive_until_stopped(receiver: Any, stop: Stop, handle: Any) -> None:
    """Handle frames until a stop signal, then close and handle what had already arrived."""
    from numaflow_rdma.transport import TransportClosedError

    while not stop.requested:
        frame = receiver.receive(timeout=0.2)
        if frame is not None:
            with frame:
                handle(frame)
    receiver.close(timeout=CLOSE_TIMEOUT)
    while True:
        try:
            frame = receiver.receive(timeout=0.2)
        except TransportClosedError:
            return
        if frame is None:
            return
        with frame:
            handle(frame)


def run_out(args: argparse.Namespace, journal: Journal, stop: Stop) -> None:
    """Receive results until stopped."""
    from numaflow_rdma.transport import Receiver

    receiver = Receiver.from_environment(backend=args.backend, name=own_name())
    journal.write("ready", address=receiver.host, port=receiver.port)
    try:
        receive_until_stopped(
            receiver,
            stop,
            lambda frame: journal.write(
                "result",
                camera=frame.metadata.get("camera"),
                index=frame.metadata.get("index"),
                sender=frame.sender,
            ),
        )
    finally:
        journal.write("exit", metrics=receiver.metrics.snapshot(), signal=stop.signal_name)


def main(argv: list[str] | None = None) -> int:
    """Run one UDF process; return its exit status."""
    args = parse_arguments(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stop = Stop()
    with Journal(Path(args.journal)) as journal:
        journal.write(
            "start",
            role=args.role,
            pid=os.getpid(),
            vertex=os.environ.get(names.ENV_VERTEX, ""),
            pod=os.environ.get("NUMAFLOW_POD", ""),
        )
        try:
            {"decode": run_decode, "infer": run_infer, "out": run_out}[args.role](args, journal, stop)
        except Exception as error:
            logger.exception("The %s UDF failed.", args.role)
            journal.write("error", message=f"{type(error).__name__}: {error}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
