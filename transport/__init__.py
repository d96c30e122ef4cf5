"""Send frames from a UDF to the next Numaflow vertex over UCX (RDMA) or TCP.

A sender resolves the destination vertex's DNS name, spreads frames over its
pods, and sends bytes, NumPy arrays and CUDA arrays. A receiver listens on
the pod's RDMA address and delivers frames with their metadata. Delivery is
at most once: a frame that cannot be delivered is dropped and counted.

Both come in a synchronous and an asyncio flavour::

    from numaflow_rdma.transport import Receiver, Sender

    sender = Sender.from_environment("infer")
    sender.send(frame, metadata={"camera": "cam-7"}, key="cam-7")

    for frame in Receiver.from_environment():
        process(frame.data, frame.metadata)

The ``ucx`` backend needs the ``numaflow-rdma[ucx]`` extra; the ``tcp``
backend needs nothing beyond the base install.
"""

from numaflow_rdma.transport.errors import (
    BackendUnavailableError,
    ConnectionLostError,
    DiscoveryError,
    FrameTooLargeError,
    HandshakeError,
    HandshakeRejectedError,
    NameNotFoundError,
    PayloadError,
    PeerConnectionError,
    ProtocolError,
    TransportClosedError,
    TransportConfigError,
    TransportError,
)
from numaflow_rdma.transport.frames import DropReason, Frame, OverflowPolicy, SendResult
from numaflow_rdma.transport.metrics import (
    TransportMetrics,
    register_prometheus,
    start_metrics_server,
)
from numaflow_rdma.transport.options import ReceiverOptions, SenderOptions
from numaflow_rdma.transport.receiver import AsyncReceiver, Receiver
from numaflow_rdma.transport.sender import AsyncSender, Sender

__all__ = [
    "AsyncReceiver",
    "AsyncSender",
    "BackendUnavailableError",
    "ConnectionLostError",
    "DiscoveryError",
    "DropReason",
    "Frame",
    "FrameTooLargeError",
    "HandshakeError",
    "HandshakeRejectedError",
    "NameNotFoundError",
    "OverflowPolicy",
    "PayloadError",
    "PeerConnectionError",
    "ProtocolError",
    "Receiver",
    "ReceiverOptions",
    "SendResult",
    "Sender",
    "SenderOptions",
    "TransportClosedError",
    "TransportConfigError",
    "TransportError",
    "TransportMetrics",
    "register_prometheus",
    "start_metrics_server",
]
