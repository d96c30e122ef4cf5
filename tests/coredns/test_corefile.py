"""The Corefile text and ConfigMaps, checked without running CoreDNS."""

from __future__ import annotations

import re

import pytest
import yaml

from numaflow_rdma import corefile
from numaflow_rdma.corefile import (
    CacheSettings,
    CorefileError,
    EtcdSettings,
    ForwardSettings,
    ListenSettings,
    ZoneServerSettings,
)

ETCD = EtcdSettings(endpoints=("http://numaflow-rdma-etcd:2379",))


def zone_block(**changes: object) -> str:
    settings = ZoneServerSettings(etcd=changes.pop("etcd", ETCD), **changes)  # type: ignore[arg-type]
    return corefile.zone_server_block(settings)


def test_zone_block_default_text() -> None:
    assert zone_block() == (
        "vertexdomain.local:53 {\n"
        "    errors\n"
        "    health :8080 {\n"
        "        lameduck 5s\n"
        "    }\n"
        "    ready :8181\n"
        "    prometheus :9153\n"
        "    cache {\n"
        "        success 9984 30\n"
        "        denial 9984 5\n"
        "        serve_stale 3600s immediate\n"
        "        servfail 0\n"
        "    }\n"
        "    etcd {\n"
        "        path /skydns\n"
        "        endpoint http://numaflow-rdma-etcd:2379\n"
        "    }\n"
        "}\n"
    )


def test_zone_block_tls_and_credentials() -> None:
    etcd = EtcdSettings(
        endpoints=("https://etcd-a:2379", "https://etcd-b:2379/"),
        ca_file="/etc/etcd-tls/ca.crt",
        cert_file="/etc/etcd-tls/tls.crt",
        key_file="/etc/etcd-tls/tls.key",
        username="coredns",
        password_env="DNS_ETCD_PASSWORD",
    )
    text = zone_block(etcd=etcd)
    assert "        endpoint https://etcd-a:2379 https://etcd-b:2379\n" in text
    assert "        tls /etc/etcd-tls/tls.crt /etc/etcd-tls/tls.key /etc/etcd-tls/ca.crt\n" in text
    assert "        credentials coredns {$DNS_ETCD_PASSWORD}\n" in text


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, "        tls\n"),
        ({"ca_file": "/tls/ca.crt"}, "        tls /tls/ca.crt\n"),
        (
            {"cert_file": "/tls/c.crt", "key_file": "/tls/c.key"},
            "        tls /tls/c.crt /tls/c.key\n",
        ),
    ],
)
def test_zone_block_tls_argument_counts(files: dict[str, str], expected: str) -> None:
    text = zone_block(etcd=EtcdSettings(endpoints=("https://etcd:2379",), **files))
    assert expected in text


def test_zone_block_without_serve_stale() -> None:
    text = zone_block(cache=CacheSettings(serve_stale=0))
    assert "serve_stale" not in text
    assert "servfail" not in text


def test_zone_block_bind_and_log() -> None:
    text = zone_block(
        listen=ListenSettings(port=1053, addresses=("127.0.0.1",)), log_queries=True, lameduck=0
    )
    assert text.startswith("vertexdomain.local:1053 {\n    bind 127.0.0.1\n    errors\n    log\n")
    assert "    health 127.0.0.1:8080\n" in text
    assert "    ready 127.0.0.1:8181\n" in text
    assert "    prometheus 127.0.0.1:9153\n" in text


def test_zone_block_ipv6_listen_address() -> None:
    text = zone_block(listen=ListenSettings(addresses=("::1",)))
    assert "    bind ::1\n" in text
    assert "    ready [::1]:8181\n" in text


def test_zone_block_normalizes_zone() -> None:
    assert zone_block(zone="Frames.Example.").startswith("frames.example:53 {\n")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"zone": "bad_zone.local"},
            "invalid DNS zone 'bad_zone.local': invalid DNS label 'bad_zone'",
        ),
        ({"zone": ""}, "invalid DNS zone"),
        ({"zone": "local"}, "overlaps 'cluster.local'"),
        ({"zone": "svc.cluster.local"}, "overlaps 'cluster.local'"),
        ({"zone": "arpa"}, "overlaps 'in-addr.arpa'"),
        ({"etcd": EtcdSettings(endpoints=())}, "missing etcd endpoints"),
        ({"etcd": EtcdSettings(endpoints=("etcd:2379",))}, "scheme must be http or https"),
        ({"etcd": EtcdSettings(endpoints=("ftp://etcd:2379",))}, "scheme must be http or https"),
        ({"etcd": EtcdSettings(endpoints=("http://:2379",))}, "host is missing"),
        ({"etcd": EtcdSettings(endpoints=("http://etcd:99999",))}, "invalid etcd endpoint"),
        ({"etcd": EtcdSettings(endpoints=("http://etcd:2379/v3",))}, "no path or query"),
        ({"etcd": EtcdSettings(endpoints=("http://u:p@etcd:2379",))}, "contains credentials"),
        ({"etcd": EtcdSettings(endpoints=("http://etcd 2379",))}, "without spaces"),
        (
            {"etcd": EtcdSettings(endpoints=("http://a:2379", "https://b:2379"))},
            "mixing http and https",
        ),
        (
            {"etcd": EtcdSettings(endpoints=("http://a:2379",), ca_file="/tls/ca.crt")},
            "use https:// endpoints",
        ),
        (
            {"etcd": EtcdSettings(endpoints=("https://a:2379",), cert_file="/tls/c.crt")},
            "must be given together",
        ),
        (
            {"etcd": EtcdSettings(endpoints=("https://a:2379",), ca_file="tls/ca.crt")},
            "expected an absolute path",
        ),
        (
            {"etcd": EtcdSettings(endpoints=("https://a:2379",), ca_file="/tls/my ca.crt")},
            "expected an absolute path",
        ),
        ({"etcd": EtcdSettings(endpoints=ETCD.endpoints, prefix="skydns")}, "invalid etcd prefix"),
        ({"etcd": EtcdSettings(endpoints=ETCD.endpoints, prefix="/a//b")}, "invalid etcd prefix"),
        ({"etcd": EtcdSettings(endpoints=ETCD.endpoints, username="")}, "invalid etcd username"),
        (
            {"etcd": EtcdSettings(endpoints=ETCD.endpoints, username="u", password_env="1X")},
            "invalid password variable",
        ),
        ({"listen": ListenSettings(port=0)}, "invalid DNS port 0"),
        ({"listen": ListenSettings(addresses=("localhost",))}, "invalid listen address"),
        ({"health_port": 70000}, "invalid health port"),
        ({"cache": CacheSettings(success_ttl=0)}, "invalid cache TTL"),
        ({"cache": CacheSettings(denial_ttl=-1)}, "invalid cache denial TTL"),
        ({"cache": CacheSettings(serve_stale=-5)}, "invalid serve_stale duration"),
        ({"lameduck": -1}, "invalid lameduck duration"),
    ],
)
def test_zone_block_rejects_invalid_setting(changes: dict[str, object], message: str) -> None:
    with pytest.raises(CorefileError, match=message):
        zone_block(**changes)


@pytest.mark.parametrize(
    ("changes", "settings"),
    [
        ({"zone": "bad_zone.local"}, ("zone",)),
        ({"zone": "svc.cluster.local"}, ("zone", "cluster_domain")),
        ({"zone": "arpa"}, ("zone",)),
        ({"cluster_domain": "cluster_a.local"}, ("cluster_domain",)),
        ({"etcd": EtcdSettings(endpoints=())}, ("etcd.endpoints",)),
        ({"etcd": EtcdSettings(endpoints=("ftp://etcd:2379",))}, ("etcd.endpoints",)),
        (
            {"etcd": EtcdSettings(endpoints=("http://a:2379",), ca_file="/tls/ca.crt")},
            ("etcd.endpoints", "etcd.ca_file"),
        ),
        (
            {"etcd": EtcdSettings(endpoints=("https://a:2379",), key_file="/tls/c.key")},
            ("etcd.cert_file", "etcd.key_file"),
        ),
        (
            {"etcd": EtcdSettings(endpoints=("https://a:2379",), ca_file="ca.crt")},
            ("etcd.ca_file",),
        ),
        ({"etcd": EtcdSettings(endpoints=ETCD.endpoints, prefix="skydns")}, ("etcd.prefix",)),
        ({"etcd": EtcdSettings(endpoints=ETCD.endpoints, username="")}, ("etcd.username",)),
        (
            {"etcd": EtcdSettings(endpoints=ETCD.endpoints, username="u", password_env="1X")},
            ("etcd.password_env",),
        ),
        ({"listen": ListenSettings(port=0)}, ("listen.port",)),
        ({"listen": ListenSettings(addresses=("localhost",))}, ("listen.addresses",)),
        ({"health_port": 0}, ("health_port",)),
        ({"ready_port": 0}, ("ready_port",)),
        ({"metrics_port": 0}, ("metrics_port",)),
        ({"lameduck": -1}, ("lameduck",)),
        ({"ready_port": 8080}, ("health_port", "ready_port")),
        ({"metrics_port": 53}, ("listen.port", "metrics_port")),
        ({"health_port": 9153}, ("health_port", "metrics_port")),
        ({"cache": CacheSettings(success_ttl=0)}, ("cache.success_ttl",)),
        ({"cache": CacheSettings(denial_ttl=0)}, ("cache.denial_ttl",)),
        ({"cache": CacheSettings(serve_stale=-1)}, ("cache.serve_stale",)),
    ],
)
def test_zone_block_error_names_settings(
    changes: dict[str, object], settings: tuple[str, ...]
) -> None:
    with pytest.raises(CorefileError) as error:
        zone_block(**changes)
    assert error.value.settings == settings


def test_invalid_cluster_domain_names_label() -> None:
    with pytest.raises(CorefileError) as error:
        zone_block(cluster_domain="cluster_a.local")
    assert str(error.value).startswith(
        "invalid cluster domain 'cluster_a.local': label 'cluster_a': use only letters"
    )


def test_forward_block_text() -> None:
    text = corefile.forward_server_block(
        ForwardSettings(upstreams=("10.96.0.53", "10.96.0.54:1053", "[fd00::35]:53", "fd00::36"))
    )
    assert text == (
        "vertexdomain.local:53 {\n"
        "    errors\n"
        "    cache {\n"
        "        success 9984 30\n"
        "        denial 9984 5\n"
        "        serve_stale 3600s immediate\n"
        "        servfail 0\n"
        "    }\n"
        "    forward . 10.96.0.53:53 10.96.0.54:1053 [fd00::35]:53 [fd00::36]:53\n"
        "}\n"
    )


@pytest.mark.parametrize(
    ("upstreams", "message"),
    [
        ((), "missing upstream"),
        (("numaflow-rdma-coredns.numaflow-rdma.svc",), "forward does not resolve names"),
        (("10.96.0.53:dns",), "port is not a number"),
        (("10.96.0.53:0",), "invalid port of upstream"),
    ],
)
def test_forward_block_rejects_invalid_upstream(upstreams: tuple[str, ...], message: str) -> None:
    with pytest.raises(CorefileError, match=message) as error:
        corefile.forward_server_block(ForwardSettings(upstreams=upstreams))
    assert error.value.settings == ("upstreams",)


KUBEADM_COREFILE = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""

STANZA = corefile.forward_server_block(ForwardSettings(upstreams=("10.96.0.53",)))


def test_merge_appends_marked_stanza() -> None:
    merged = corefile.merge_server_block(KUBEADM_COREFILE, STANZA, "vertexdomain.local")
    assert merged.startswith(KUBEADM_COREFILE + "\n# BEGIN numaflow-rdma zone vertexdomain.local\n")
    assert merged.endswith(STANZA + "# END numaflow-rdma zone vertexdomain.local\n")


def test_merge_twice_is_unchanged() -> None:
    once = corefile.merge_server_block(KUBEADM_COREFILE, STANZA, "vertexdomain.local")
    assert corefile.merge_server_block(once, STANZA, "vertexdomain.local") == once


def test_merge_replaces_earlier_stanza() -> None:
    once = corefile.merge_server_block(KUBEADM_COREFILE, STANZA, "vertexdomain.local")
    moved = corefile.forward_server_block(ForwardSettings(upstreams=("10.96.0.99",)))
    twice = corefile.merge_server_block(once, moved, "vertexdomain.local")
    assert "10.96.0.53" not in twice
    assert twice.count("forward . 10.96.0.99:53") == 1
    assert twice.count("# BEGIN numaflow-rdma") == 1


def test_merge_keeps_other_zones() -> None:
    other = corefile.forward_server_block(
        ForwardSettings(upstreams=("10.96.0.7",), zone="frames.test")
    )
    both = corefile.merge_server_block(
        corefile.merge_server_block(KUBEADM_COREFILE, STANZA, "vertexdomain.local"),
        other,
        "frames.test",
    )
    without_first = corefile.remove_server_block(both, "vertexdomain.local")
    assert "10.96.0.53" not in without_first
    assert "forward . 10.96.0.7:53" in without_first
    assert without_first.startswith(KUBEADM_COREFILE)


def test_remove_restores_original() -> None:
    merged = corefile.merge_server_block(KUBEADM_COREFILE, STANZA, "vertexdomain.local")
    assert corefile.remove_server_block(merged, "vertexdomain.local") == KUBEADM_COREFILE


def test_remove_without_stanza_is_unchanged() -> None:
    assert corefile.remove_server_block(KUBEADM_COREFILE, "vertexdomain.local") == KUBEADM_COREFILE


def test_remove_rejects_missing_end_marker() -> None:
    merged = corefile.merge_server_block(KUBEADM_COREFILE, STANZA, "vertexdomain.local")
    broken = merged.replace("# END numaflow-rdma zone vertexdomain.local\n", "")
    with pytest.raises(CorefileError, match=re.escape("no '# END numaflow-rdma zone vertexdomain.local'")):
        corefile.remove_server_block(broken, "vertexdomain.local")


def test_merge_rejects_unmarked_block_for_zone() -> None:
    handwritten = KUBEADM_COREFILE + "vertexdomain.local:53 {\n    forward . 10.0.0.1\n}\n"
    with pytest.raises(CorefileError, match="numaflow-rdma did not write") as error:
        corefile.merge_server_block(handwritten, STANZA, "vertexdomain.local")
    assert error.value.settings == ()


def test_configmap_yaml_round_trips() -> None:
    text = zone_block()
    manifest = corefile.configmap(
        "numaflow-rdma-coredns",
        "numaflow-rdma",
        {corefile.ZONE_COREFILE_KEY: text, "tabs.txt": "a\tb\n", "no-newline": "x\ny"},
        labels={"app.kubernetes.io/name": "numaflow-rdma", "yes": "true"},
    )
    assert yaml.safe_load(corefile.to_yaml(manifest)) == manifest


@pytest.mark.parametrize(
    "value",
    [" leading space\nsecond\n", "two endings\n\n", "single line", "on", "123", "", "a: b", "- x"],
)
def test_yaml_scalar_round_trips(value: str) -> None:
    manifest = {"data": {"key": value}}
    assert yaml.safe_load(corefile.to_yaml(manifest)) == manifest


def test_configmap_rejects_invalid_key() -> None:
    with pytest.raises(CorefileError, match="invalid ConfigMap key"):
        corefile.configmap("x", "y", {"bad/key": "z"})


def test_custom_configmap_key_ends_in_server() -> None:
    assert (
        corefile.custom_configmap_key("VertexDomain.local.")
        == "numaflow-rdma.vertexdomain.local.server"
    )


def test_shared_port_error_names_both_servers() -> None:
    with pytest.raises(CorefileError) as error:
        zone_block(ready_port=8080)

    assert str(error.value) == (
        "invalid ready port 8080: the health port is 8080 too, and CoreDNS cannot start two "
        "servers on one port; give each a port of its own"
    )
