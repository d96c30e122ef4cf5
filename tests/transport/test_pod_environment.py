"""Reading what the webhook injects: variables, the annotations file, network-status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from numaflow_rdma import names
from numaflow_rdma.transport.environment import (
    network_status_rdma_device,
    parse_vertex_name,
    rdma_device,
    read_annotations,
    read_environment,
)
from numaflow_rdma.transport.errors import TransportConfigError

STATUS = [
    {"name": "cbr0", "interface": "eth0", "ips": ["10.244.1.7"], "default": True},
    {
        "name": "default/rdma-net",
        "interface": "net1",
        "ips": ["198.18.0.7"],
        "device-info": {
            "type": "pci",
            "version": "1.1.0",
            "pci": {"pci-address": "0000:18:00.1", "rdma-device": "mlx5_3"},
        },
    },
]


def _go_quote(value: str) -> str:
    # Go's %q for ASCII text: JSON string escaping is the same for these characters.
    return json.dumps(value)


def _annotations_file(tmp_path: Path, status: object = STATUS) -> Path:
    path = tmp_path / "annotations"
    lines = [
        f"kubernetes.io/config.seen={_go_quote('2026-01-01T00:00:00Z')}",
        f"{names.MULTUS_NETWORK_STATUS_ANNOTATION}={_go_quote(json.dumps(status, indent=1))}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        names.ENV_VERTEX: "infer.video.default.vertexdomain.local",
        names.ENV_DESTINATIONS: "sink=sink.video.default.vertexdomain.local,track=track.video.default.vertexdomain.local",
        names.ENV_NETWORK: "default/rdma-net",
        names.ENV_INTERFACE: "net1",
        names.ENV_PORT: "7480",
        names.ENV_ANNOTATIONS_FILE: str(_annotations_file(tmp_path)),
        **extra,
    }


def test_annotations_file_is_parsed(tmp_path: Path) -> None:
    annotations = read_annotations(_annotations_file(tmp_path))
    assert json.loads(annotations[names.MULTUS_NETWORK_STATUS_ANNOTATION]) == STATUS
    assert annotations["kubernetes.io/config.seen"] == "2026-01-01T00:00:00Z"


def test_invalid_annotations_line_raises(tmp_path: Path) -> None:
    path = tmp_path / "annotations"
    path.write_text("key=unquoted\n")
    with pytest.raises(TransportConfigError, match='expected key="value"'):
        read_annotations(path)


def test_environment_gives_identity_and_destinations(tmp_path: Path) -> None:
    settings = read_environment(_environ(tmp_path))
    identity = settings.identity("infer-0")
    assert (identity.namespace, identity.pipeline, identity.name) == ("default", "video", "infer-0")
    assert settings.port == 7480
    assert settings.destination("sink") == "sink.video.default.vertexdomain.local"
    with pytest.raises(TransportConfigError, match="lists sink, track"):
        settings.destination(None)
    with pytest.raises(TransportConfigError, match="not downstream"):
        settings.destination("other")


def test_rdma_attachment_from_network_status(tmp_path: Path) -> None:
    attachment = read_environment(_environ(tmp_path)).rdma_attachment()
    assert attachment.address == "198.18.0.7"
    assert attachment.interface == "net1"
    assert attachment.device == "mlx5_3"
    assert (
        rdma_device(attachment, tmp_path / "no-such-dir") == "mlx5_3 (network-status device-info)"
    )


def test_rdma_attachment_by_interface(tmp_path: Path) -> None:
    environ = _environ(tmp_path, **{names.ENV_NETWORK: ""})
    assert read_environment(environ).rdma_attachment().address == "198.18.0.7"


def test_missing_network_raises(tmp_path: Path) -> None:
    environ = _environ(tmp_path, **{names.ENV_NETWORK: "default/other"})
    with pytest.raises(TransportConfigError, match="no entry for network 'default/other'"):
        read_environment(environ).rdma_attachment()


def test_device_detection_without_device_info(tmp_path: Path) -> None:
    assert network_status_rdma_device({"name": "x"}) is None
    device_dir = tmp_path / "infiniband"
    assert rdma_device(None, device_dir) is None
    device_dir.mkdir()
    assert rdma_device(None, device_dir) == str(device_dir)


def test_secret_from_variable_or_file(tmp_path: Path) -> None:
    assert read_environment({names.ENV_SECRET: "s3cret"}).secret == b"s3cret"
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    assert read_environment({names.ENV_SECRET_FILE: str(secret_file)}).secret == b"from-file"
    assert read_environment({}).secret is None
    with pytest.raises(TransportConfigError, match="cannot read"):
        read_environment({names.ENV_SECRET_FILE: str(tmp_path / "missing")})


def test_invalid_values_raise() -> None:
    with pytest.raises(TransportConfigError, match="expected a port number"):
        read_environment({names.ENV_PORT: "http"})
    with pytest.raises(TransportConfigError, match="expected <vertex>"):
        parse_vertex_name("infer.video")
    with pytest.raises(TransportConfigError, match="is not set"):
        read_environment({}).identity()


def test_receiver_rejects_host_name() -> None:
    from numaflow_rdma.transport import Receiver

    with pytest.raises(TransportConfigError, match="expected the IP address"):
        Receiver("localhost", 0)
