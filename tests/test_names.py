"""Unit tests of the shared names: DNS labels, vertex names, etcd keys and record values."""

from __future__ import annotations

import json

import pytest

from numaflow_rdma import names


def test_vertex_dns_name_joins_labels_and_zone() -> None:
    assert names.vertex_dns_name("infer", "video", "cams") == "infer.video.cams.vertexdomain.local"


def test_vertex_dns_name_lowercases_upper_case() -> None:
    assert (
        names.vertex_dns_name("Infer", "Video", "Cams", "Zone.Example.")
        == "infer.video.cams.zone.example"
    )


@pytest.mark.parametrize("bad", ["in.fer", "-infer", "infer-", "", "in_fer", "infér", "a" * 64])
def test_vertex_dns_name_rejects_invalid_vertex(bad: str) -> None:
    with pytest.raises(names.InvalidNameError, match="vertex name"):
        names.vertex_dns_name(bad, "video", "cams")


def test_label_of_63_characters_is_valid() -> None:
    assert names.validate_label("a" * 63) == "a" * 63


def test_vertex_dns_name_rejects_names_over_253_characters() -> None:
    long_zone = ".".join(["z" * 60] * 3)
    with pytest.raises(names.InvalidNameError, match="at most 253"):
        names.vertex_dns_name("v" * 63, "p" * 63, "n" * 63, long_zone)


def test_zone_rejects_empty_and_bad_labels() -> None:
    with pytest.raises(names.InvalidNameError, match="zone"):
        names.validate_zone("")
    with pytest.raises(names.InvalidNameError):
        names.validate_zone("bad..zone")


def test_pod_label_keeps_valid_pod_names() -> None:
    assert names.pod_label("video-infer-0-abcde") == "video-infer-0-abcde"


def test_pod_label_shortens_long_names_stably() -> None:
    pod = "a-very-long-pipeline-name-for-testing-" + "x" * 40 + "-infer-0-abcde"
    label = names.pod_label(pod)
    assert len(label) <= 63
    assert names.validate_label(label) == label
    assert label == names.pod_label(pod)


def test_pod_label_distinguishes_names_with_same_prefix() -> None:
    prefix = "p" * 70
    assert names.pod_label(prefix + "-a") != names.pod_label(prefix + "-b")


def test_pod_label_replaces_dots_and_upper_case() -> None:
    label = names.pod_label("Pod.With.Dots")
    assert names.validate_label(label) == label
    assert label.startswith("pod-with-dots-")


def test_pod_label_rejects_empty_name() -> None:
    with pytest.raises(names.InvalidNameError):
        names.pod_label("")


def test_pod_etcd_key_reverses_zone_labels() -> None:
    key = names.pod_etcd_key("video-infer-0-abcde", "infer", "video", "cams")
    assert key == "/skydns/local/vertexdomain/cams/video/infer/video-infer-0-abcde"


def test_pod_etcd_key_sits_under_vertex_prefix() -> None:
    key = names.pod_etcd_key("p-0", "infer", "video", "cams", "example.org", "/dns/")
    assert key.startswith(names.vertex_etcd_prefix("infer", "video", "cams", "example.org", "/dns"))
    assert key == "/dns/org/example/cams/video/infer/p-0"


def test_etcd_key_matches_dns_name_of_pod() -> None:
    vertex = names.vertex_dns_name("infer", "video", "cams")
    pod_name = names.pod_dns_name("p-0", vertex)
    assert names.etcd_key_for_name(pod_name) == names.pod_etcd_key("p-0", "infer", "video", "cams")


def test_etcd_prefix_must_be_absolute() -> None:
    with pytest.raises(names.InvalidNameError, match="etcd prefix"):
        names.etcd_key_for_name("a.b", prefix="skydns")


def test_parse_pod_etcd_key_round_trips() -> None:
    key = names.pod_etcd_key("p-0", "infer", "video", "cams")
    assert names.parse_pod_etcd_key(key) == names.RecordKey("cams", "video", "infer", "p-0")


@pytest.mark.parametrize(
    "key",
    [
        "/skydns/local/vertexdomain/cams/video/infer",
        "/skydns/local/vertexdomain/cams/video/infer/p-0/extra",
        "/skydns/local/other/cams/video/infer/p-0",
        "/skydns/local/vertexdomain/cams/video/infer/P_0",
    ],
)
def test_parse_pod_etcd_key_rejects_other_shapes(key: str) -> None:
    assert names.parse_pod_etcd_key(key) is None


def test_record_value_holds_coredns_fields_and_owner() -> None:
    value = json.loads(names.record_value("198.18.0.5", 7470, 30, "dnssync-a"))
    assert value == {"host": "198.18.0.5", "port": 7470, "ttl": 30, "owner": "dnssync-a"}


def test_record_value_normalizes_ipv6() -> None:
    value = json.loads(names.record_value("2001:DB8:0:0::1", 7470, 30, "o"))
    assert value["host"] == "2001:db8::1"


@pytest.mark.parametrize(
    ("host", "port", "ttl"),
    [
        ("not-an-ip", 7470, 30),
        ("198.18.0.5", 0, 30),
        ("198.18.0.5", 70000, 30),
        ("198.18.0.5", 7470, 0),
    ],
)
def test_record_value_rejects_bad_fields(host: str, port: int, ttl: int) -> None:
    with pytest.raises(names.InvalidNameError):
        names.record_value(host, port, ttl, "o")


def test_destinations_round_trip() -> None:
    destinations = {
        "out": "out.video.cams.vertexdomain.local",
        "infer": "infer.video.cams.vertexdomain.local",
    }
    text = names.format_destinations(destinations)
    assert text.startswith("infer=")
    assert names.parse_destinations(text) == destinations


def test_parse_destinations_accepts_empty_value() -> None:
    assert names.parse_destinations("") == {}


def test_parse_destinations_rejects_entry_without_name() -> None:
    with pytest.raises(names.InvalidNameError, match="vertex=dns-name"):
        names.parse_destinations("infer")


def test_vertex_pod_labels_need_all_three() -> None:
    labels = dict(names.VERTEX_POD_LABELS)
    assert names.is_vertex_pod_labels(labels)
    labels[names.LABEL_COMPONENT] = "mono-vertex"
    assert not names.is_vertex_pod_labels(labels)
    assert not names.is_vertex_pod_labels(None)


def test_opt_in_and_opt_out() -> None:
    assert names.is_opted_in_namespace({names.INJECT_LABEL: "enabled"})
    assert not names.is_opted_in_namespace({names.INJECT_LABEL: "disabled"})
    assert names.is_opted_out_pod({names.INJECT_ANNOTATION: "False"})
    assert not names.is_opted_out_pod({})


@pytest.mark.parametrize("name", ["infer\n", "infer\r\n", "infer\nout"])
def test_label_with_line_break_is_invalid(name: str) -> None:
    with pytest.raises(names.InvalidNameError):
        names.validate_label(name)


def test_pod_label_hashes_name_with_line_break() -> None:
    assert "\n" not in names.pod_label("video-infer-0\n")
