"""The example UDFs' handlers, called as pynumaflow would, with a real receiver."""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from netnamespaces import REPO, requires_root, run_isolated
from pynumaflow.mapper import Datum

from numaflow_rdma import names

pytestmark = [pytest.mark.netns, requires_root]

PORT = 17470


def _load(name: str) -> ModuleType:
    path = REPO / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _datum(value: dict[str, object], keys: list[str]) -> Datum:
    now = datetime.datetime.now(datetime.timezone.utc)
    return Datum(keys=keys, value=json.dumps(value).encode(), event_time=now, watermark=now)


def _pod_environment(work: Path) -> None:
    status = [{"name": "default/rdma-net", "interface": "net1", "ips": ["127.0.0.1"]}]
    annotations = work / "annotations"
    annotations.write_text(
        f"{names.MULTUS_NETWORK_STATUS_ANNOTATION}={json.dumps(json.dumps(status))}\n"
    )
    os.environ.update(
        {
            names.ENV_VERTEX: "infer.video.default.vertexdomain.local",
            names.ENV_DESTINATIONS: f"infer=127.0.0.1:{PORT}",
            names.ENV_NETWORK: "default/rdma-net",
            names.ENV_INTERFACE: "net1",
            names.ENV_PORT: str(PORT),
            names.ENV_ANNOTATIONS_FILE: str(annotations),
            names.ENV_BACKEND: "tcp",
        }
    )


def _check_examples() -> None:
    with tempfile.TemporaryDirectory() as work:
        _pod_environment(Path(work))
        sending = _load("send_frames_udf")
        receiving = _load("receive_frames_udf")
        receiver = receiving.start_receiver()
        try:
            messages = sending.handler(
                ["cam-7"], _datum({"camera": "cam-7", "frame": 3}, ["cam-7"])
            )
            claim_message = messages.items()[0]
            claim = json.loads(claim_message.value)
            assert claim_message.keys == ["cam-7"]
            assert claim["sent"] is True, claim
            assert claim["bytes"] == 1080 * 1920 * 3
            assert claim["peer"] == f"127.0.0.1:{PORT}"

            deadline = time.monotonic() + 10
            while claim["frame_id"] not in receiving._results and time.monotonic() < deadline:
                time.sleep(0.02)
            forwarded = receiving.handler(["cam-7"], _datum(claim, ["cam-7"])).items()[0]
            record = json.loads(forwarded.value)
            expected = float(np.mean(sending.make_frame("cam-7", 3)))
            assert record["received_here"] is True
            assert record["result"] == {"camera": "cam-7", "brightness": round(expected, 2)}

            elsewhere = receiving.handler(
                ["cam-8"], _datum({"frame_id": "unknown"}, ["cam-8"])
            ).items()[0]
            assert json.loads(elsewhere.value)["received_here"] is False
        finally:
            sending.get_sender().close(timeout=1)
            receiver.close(timeout=1)


def test_example_handlers_send_and_receive() -> None:
    run_isolated(_check_examples)
