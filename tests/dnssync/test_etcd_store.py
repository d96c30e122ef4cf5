"""The etcd record store against real etcd: compare-and-write, TLS, users, outages, endpoints."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from secureetcd import PASSWORD, USER, SecureEtcd

from numaflow_rdma.controlplane import Etcd
from numaflow_rdma.controlplane.process import free_port
from numaflow_rdma.dnssync.etcd import EtcdRecordStore, EtcdUnavailableError
from numaflow_rdma.dnssync.retry import Backoff
from numaflow_rdma.dnssync.settings import EtcdSettings, parse_etcd_endpoints

pytestmark = pytest.mark.controlplane

KEY = "/skydns/local/vertexdomain/team/video/infer/p1"
FAST = Backoff(initial=0.05, maximum=0.2)


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Etcd]:
    server = Etcd("etcd-store-test", tmp_path)
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def store_for(endpoints: str, attempts: int = 3) -> EtcdRecordStore:
    return EtcdRecordStore(
        EtcdSettings(parse_etcd_endpoints(endpoints)), attempts=attempts, backoff=FAST
    )


def test_put_compares_before_writing(etcd: Etcd) -> None:
    store = store_for(etcd.endpoint)
    try:
        assert store.put(KEY, "v1", expected=None)
        # A create finds the key taken; an update with a stale value finds it changed.
        assert not store.put(KEY, "other", expected=None)
        assert not store.put(KEY, "v2", expected="stale")
        assert store.put(KEY, "v2", expected="v1")
        assert store.get_prefix("/skydns/") == {KEY: "v2"}
    finally:
        store.close()


def test_delete_compares_and_is_exact(etcd: Etcd) -> None:
    store = store_for(etcd.endpoint)
    try:
        store.put(KEY, "mine", expected=None)
        store.put(KEY + "0", "sibling", expected=None)

        assert not store.delete(KEY, expected="not what is stored")
        assert store.delete(KEY, expected="mine")
        assert store.get_prefix("/skydns/") == {KEY + "0": "sibling"}
    finally:
        store.close()


def test_outage_retries_then_recovers(etcd: Etcd, caplog: pytest.LogCaptureFixture) -> None:
    store = store_for(etcd.endpoint, attempts=3)
    try:
        store.put(KEY, "before", expected=None)
        etcd.stop()

        with caplog.at_level(logging.WARNING), pytest.raises(EtcdUnavailableError):
            store.get_prefix("/skydns/")

        lines = [record.getMessage() for record in caplog.records]
        assert re.match(r"attempt 1/3 failed; will retry in 0\.1s: GET /skydns/\* -> ", lines[0])
        assert re.match(r"attempt 2/3 failed; will retry in 0\.1s: GET /skydns/\* -> ", lines[1])
        assert re.match(r"attempt 3/3 failed; escalating: GET /skydns/\* -> ", lines[2])
        assert etcd.endpoint.removeprefix("http://") in lines[2]

        etcd.start()
        etcd.wait_ready()
        assert store.get_prefix("/skydns/") == {KEY: "before"}
    finally:
        store.close()


def test_dead_endpoint_is_skipped(etcd: Etcd) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    store = store_for(f"{dead},{etcd.endpoint}", attempts=3)
    try:
        assert store.put(KEY, "v1", expected=None)
        assert str(store.endpoint) == etcd.endpoint
    finally:
        store.close()


def test_tls_client_certificate_and_password(tmp_path: Path) -> None:
    server = SecureEtcd(tmp_path)
    server.start()
    try:
        settings = EtcdSettings(
            endpoints=parse_etcd_endpoints(server.endpoint),
            ca_file=str(server.ca_file),
            cert_file=str(server.client_cert),
            key_file=str(server.client_key),
            username=USER,
            password=PASSWORD,
        )
        store = EtcdRecordStore(settings, attempts=1, backoff=FAST)
        try:
            assert store.put(KEY, "v1", expected=None)
            assert store.get_prefix("/skydns/") == {KEY: "v1"}
            # The user may only write under the record prefix.
            with pytest.raises(EtcdUnavailableError, match="PERMISSION_DENIED"):
                store.put("/elsewhere", "x", expected=None)
        finally:
            store.close()

        wrong = EtcdRecordStore(
            EtcdSettings(
                settings.endpoints,
                settings.ca_file,
                settings.cert_file,
                settings.key_file,
                USER,
                "wrong",
            ),
            attempts=1,
        )
        with pytest.raises(EtcdUnavailableError, match="authentication failed"):
            wrong.get_prefix("/skydns/")
        wrong.close()
    finally:
        server.stop()
