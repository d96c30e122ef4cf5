"""The cached lookup of a NetworkAttachmentDefinition's resource name."""

from __future__ import annotations

from typing import Any

import pytest

from numaflow_rdma.names import MULTUS_RESOURCE_NAME_ANNOTATION
from numaflow_rdma.webhook.multus import NetworkRef
from numaflow_rdma.webhook.nad import CachedNadResolver, NetworkLookupError, NetworkNotFoundError

NETWORK = NetworkRef("infra", "rdma-net")


class FakeApi:
    """Returns fetch results from a list: a resource name, None, or an exception."""

    def __init__(self, *results: Any) -> None:
        self.results = list(results)
        self.calls = 0

    def __call__(self, network: NetworkRef) -> dict[str, Any]:
        self.calls += 1
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        annotations = {MULTUS_RESOURCE_NAME_ANNOTATION: result} if result else {}
        return {"metadata": {"name": network.name, "annotations": annotations}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_answer_cached_for_ttl() -> None:
    api, clock = FakeApi("rdma/a", "rdma/b"), Clock()
    resolve = CachedNadResolver(api, ttl=30, clock=clock)
    assert resolve(NETWORK) == "rdma/a"
    clock.now += 29
    assert resolve(NETWORK) == "rdma/a"
    assert api.calls == 1
    clock.now += 2
    assert resolve(NETWORK) == "rdma/b"
    assert api.calls == 2


def test_missing_annotation_gives_none() -> None:
    assert CachedNadResolver(FakeApi(None))(NETWORK) is None


def test_not_found_raised_and_not_cached() -> None:
    api = FakeApi(NetworkNotFoundError("not found"), "rdma/a")
    resolve = CachedNadResolver(api, ttl=30)
    with pytest.raises(NetworkNotFoundError):
        resolve(NETWORK)
    assert resolve(NETWORK) == "rdma/a"


def test_failed_refresh_uses_stale_answer() -> None:
    api, clock = (
        FakeApi("rdma/a", NetworkLookupError("timeout"), NetworkLookupError("timeout")),
        Clock(),
    )
    resolve = CachedNadResolver(api, ttl=30, clock=clock)
    assert resolve(NETWORK) == "rdma/a"
    clock.now += 60
    assert resolve(NETWORK) == "rdma/a"
    clock.now += 300
    with pytest.raises(NetworkLookupError):
        resolve(NETWORK)


def test_failed_first_lookup_raised() -> None:
    with pytest.raises(NetworkLookupError):
        CachedNadResolver(FakeApi(NetworkLookupError("down")))(NETWORK)
