"""Coverage-guided fuzzing of the webhook's text parsers with atheris (libFuzzer).

    python tests/reliability/atheris_parsers.py seed CORPUS
    python tests/reliability/atheris_parsers.py -runs=20000 -max_total_time=60 CORPUS

The first byte of an input picks the parser; the rest, decoded as UTF-8,
is its text:

- 0: a Multus network-selection annotation for ``multus.add_network``. It
  returns the annotation with the RDMA network or raises
  NetworkAnnotationError. Its output parses again and selects the network,
  and adding the network to it again changes nothing;
- 1: the JSON of a Vertex object, base64-encoded as Numaflow passes it, and
  2: a raw NUMAFLOW_VERTEX_OBJECT value, for ``vertex.decode_vertex_object``
  and ``downstream_vertices``: they return the object and its downstream
  names or raise VertexObjectError, and each name gives a valid DNS name
  or InvalidNameError;
- 3: a pod name for ``names.pod_label``, which always returns a valid label.

Any other exception, or a broken property, is a crash that libFuzzer
reports with the input that caused it. Exit status 0 means none was found.
``seed`` writes the starting inputs into the corpus folder.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from numaflow_rdma import names
    from numaflow_rdma.webhook import multus, vertex

NETWORK = multus.NetworkRef("infra", "rdma-net")
LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def check_annotation(value: str) -> None:
    try:
        update = multus.add_network(value, NETWORK, "net1", "pipelines")
    except multus.NetworkAnnotationError:
        return
    selections = multus.parse_networks(update.value)
    wanted = multus.NetworkSelection(name=NETWORK.name, namespace=NETWORK.namespace)
    assert any(s.same_network(wanted, "pipelines") for s in selections), update.value
    again = multus.add_network(update.value, NETWORK, "net1", "pipelines")
    assert not again.changed, f"adding the network twice changed {update.value!r}"
    assert again.interface == update.interface


def check_vertex_object(encoded: str) -> None:
    env = [{"name": "NUMAFLOW_VERTEX_OBJECT", "value": encoded}]
    pod = {"spec": {"containers": [{"name": "numa", "env": env}]}}
    try:
        document = vertex.decode_vertex_object(pod)
        targets = vertex.downstream_vertices(document)
    except vertex.VertexObjectError:
        return
    for target in targets:
        try:
            name = names.vertex_dns_name(target, "video", "pipelines")
        except names.InvalidNameError:
            continue
        assert all(LABEL.fullmatch(label) for label in name.split(".")), name


def check_pod_label(pod_name: str) -> None:
    try:
        label = names.pod_label(pod_name)
    except names.InvalidNameError:
        assert not pod_name
        return
    assert LABEL.fullmatch(label), f"pod_label({pod_name!r}) returned {label!r}"


def test_one_input(data: bytes) -> None:
    if not data:
        return
    text = data[1:].decode("utf-8", "replace")
    selector = data[0] % 4
    if selector == 0:
        check_annotation(text)
    elif selector == 1:
        check_vertex_object(base64.b64encode(text.encode()).decode())
    elif selector == 2:
        check_vertex_object(text)
    else:
        check_pod_label(text)


def seed_corpus(folder: Path) -> None:
    """Write one starting input per parser and form into ``folder``."""
    vertex_object = {
        "spec": {
            "name": "infer",
            "pipelineName": "video",
            "toEdges": [{"to": "out"}, {"to": "sink"}],
        }
    }
    seeds = [
        b"\x00rdma-net, other/sriov@net2",
        b"\x00infra/rdma-net@net1",
        b'\x00[{"name": "sriov", "namespace": "other", "interface": "net1"}]',
        b"\x01" + json.dumps(vertex_object).encode(),
        b"\x02" + base64.b64encode(json.dumps(vertex_object).encode()),
        b"\x03video-infer-0-abcde",
        b"\x03Video.Infer-0",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(seeds):
        (folder / f"seed-{index}").write_bytes(seed)


def main() -> None:
    if sys.argv[1:2] == ["seed"]:
        seed_corpus(Path(sys.argv[2]))
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
