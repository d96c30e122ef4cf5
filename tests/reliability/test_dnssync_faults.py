"""dnssync under faults: random pod events while dnssync, the DNS etcd and the API server fail.

One run issues random pod and namespace events through the API (see
``dnschaos.PodEvents``). Meanwhile the real ``numaflow-rdma dnssync``
process is killed with SIGKILL three times, the DNS etcd is restarted twice
(once stopped, once killed) and the API server is restarted once. Then,
with every process back:

- the records of dnssync's owner id equal those the API's pods call for,
  with no stale and no missing key, and still do a resync interval later;
- CoreDNS answers every vertex name with exactly those addresses;
- the keys of other owners, planted before the run, keep their values and
  etcd revisions.

The run uses a control plane of its own, because it restarts its processes.
``NUMAFLOW_RDMA_CHAOS_SEED`` repeats a run's events; each run reports its seed.
"""

from __future__ import annotations

import collections
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
from dnschaos import (
    VERTICES,
    PodEvents,
    compare,
    expected_records,
    foreign_values,
    owned_records,
)
from harness import DnssyncProcess, answers, delete_namespace, vertex_name
from runsize import record_figures, scaled

from numaflow_rdma import names
from numaflow_rdma.controlplane import ControlPlane
from numaflow_rdma.dnssync.kube import KubeClient

pytestmark = pytest.mark.controlplane

SUITE = "dnssync"
EVENTS = scaled(150, 1_200)
OWNER = "reliability-dnssync"
RESYNC_SECONDS = 5
CONVERGENCE_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of this module's own, because the test restarts its processes."""
    with ControlPlane(work_dir=tmp_path_factory.mktemp("chaos-plane")) as private:
        yield private


def etcd_client(plane: ControlPlane) -> Any:
    import pyetcd

    assert plane.dns_etcd is not None
    return pyetcd.client(host="127.0.0.1", port=plane.dns_etcd.client_port, timeout=5)


def read_prefix(plane: ControlPlane, prefix: str) -> dict[str, tuple[str, int]]:
    """Return every key under ``prefix`` with its value and modification revision."""
    client = etcd_client(plane)
    try:
        return {
            metadata.key.decode(): (value.decode(errors="replace"), metadata.mod_revision)
            for value, metadata in client.get_prefix(prefix)
        }
    finally:
        client.close()


class Faults:
    """The fault actions of one run, each counted when it happens."""

    def __init__(self, plane: ControlPlane, dnssync: DnssyncProcess) -> None:
        assert plane.dns_etcd is not None and plane.apiserver is not None
        self.etcd = plane.dns_etcd
        self.apiserver = plane.apiserver
        self.dnssync = dnssync
        self.counts: collections.Counter[str] = collections.Counter()
        self.downtime: dict[str, float] = collections.defaultdict(float)
        self._down_since: dict[str, float] = {}

    def _down(self, what: str) -> None:
        self._down_since[what] = time.monotonic()

    def _up(self, what: str) -> None:
        self.downtime[what] += time.monotonic() - self._down_since.pop(what)

    def kill_dnssync(self) -> None:
        self.dnssync.kill()
        self.counts["dnssync_sigkill"] += 1
        self._down("dnssync")

    def start_dnssync(self) -> None:
        # Not waiting for ready: etcd may be down, and then dnssync reports not ready.
        self.dnssync.start(wait_ready=False)
        self._up("dnssync")

    def stop_etcd(self) -> None:
        self.etcd.stop()
        self.counts["dns_etcd_restart"] += 1
        self._down("dns_etcd")

    def kill_etcd(self) -> None:
        self.etcd.kill()
        self.counts["dns_etcd_restart"] += 1
        self._down("dns_etcd")

    def start_etcd(self) -> None:
        self.etcd.start()
        self.etcd.wait_ready()
        self._up("dns_etcd")

    def restart_apiserver(self) -> None:
        self._down("apiserver")
        self.apiserver.stop()
        # Long enough for dnssync's watches and Lease renewals to fail and retry.
        time.sleep(2.0)
        self.apiserver.start()
        self.apiserver.wait_ready()
        self._up("apiserver")
        self.counts["apiserver_restart"] += 1


def fault_schedule(
    faults: Faults, events: PodEvents, count: int
) -> dict[int, list[Callable[[], None]]]:
    """Return the fault actions by the index of the event they come before.

    The second dnssync kill falls inside the second etcd outage, so that
    instance starts while etcd is away. Besides the random ones, the last
    namespace leaves the opt-in and comes back at fixed points.
    """
    at = {
        0.35: [events.flip_namespace],
        0.90: [events.flip_namespace],
        0.10: [faults.kill_dnssync],
        0.16: [faults.start_dnssync],
        0.25: [faults.stop_etcd],
        0.31: [faults.start_etcd],
        0.45: [faults.restart_apiserver],
        0.60: [faults.kill_etcd],
        0.63: [faults.kill_dnssync],
        0.66: [faults.start_etcd],
        0.68: [faults.start_dnssync],
        0.80: [faults.kill_dnssync],
        0.86: [faults.start_dnssync],
    }
    schedule: dict[int, list[Callable[[], None]]] = {}
    for fraction, actions in at.items():
        schedule.setdefault(int(fraction * count), []).extend(actions)
    return schedule


def dns_resolver(plane: ControlPlane) -> dns.resolver.Resolver:
    assert plane.coredns is not None
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [plane.coredns.address[0]]
    resolver.port = plane.coredns.address[1]
    resolver.lifetime = resolver.timeout = 10.0
    resolver.cache = None
    return resolver


def test_records_converge_after_faults(plane: ControlPlane, tmp_path: Path) -> None:
    assert plane.apiserver is not None and plane.dns_etcd is not None
    seed = int(os.environ.get("NUMAFLOW_RDMA_CHAOS_SEED") or random.randrange(2**32))
    zone_prefix = names.zone_etcd_prefix()

    # First, someone else's keys, in the zone and outside it.
    foreign = foreign_values(zone_prefix)
    client = etcd_client(plane)
    try:
        for key, value in foreign.items():
            client.put(key, value)
    finally:
        client.close()
    foreign_before = {key: read_prefix(plane, key)[key] for key in foreign}

    api_client = plane.apiserver.api_client()
    kube = KubeClient(api_client)
    run = uuid.uuid4().hex[:6]
    namespaces = [f"chaos-{run}-{index}" for index in range(4)]
    events = PodEvents(kube, namespaces, seed, max_live=scaled(40, 150))
    dnssync = DnssyncProcess(
        tmp_path,
        "dnssync",
        kubeconfig=plane.apiserver.kubeconfig_path,
        etcd_endpoint=plane.dns_etcd.endpoint,
        owner_id=OWNER,
        lease_name=f"chaos-{run}",
        extra=(f"--resync-interval={RESYNC_SECONDS}", "--lease-duration=3"),
    )
    faults = Faults(plane, dnssync)
    try:
        events.create_namespaces()
        dnssync.start(wait_ready=True)

        # Then the events, with the faults between them.
        schedule = fault_schedule(faults, events, EVENTS)
        for index in range(EVENTS):
            for action in schedule.get(index, []):
                action()
            events.step()
        assert dnssync.pid is not None, "a scheduled dnssync start did not happen"
        assert plane.dns_etcd.pid is not None, "a scheduled etcd start did not happen"

        # Then convergence: dnssync's records against the API's truth.
        quiet_since = time.monotonic()
        expected = expected_records(kube, namespaces)
        deadline = quiet_since + CONVERGENCE_TIMEOUT
        while True:
            values = {key: value for key, (value, _) in read_prefix(plane, zone_prefix).items()}
            comparison = compare(expected, owned_records(values, OWNER))
            if comparison.equal or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        converge_seconds = time.monotonic() - quiet_since
        assert comparison.equal, (
            f"after {CONVERGENCE_TIMEOUT:.0f} s (seed {seed}): stale {comparison.stale}, "
            f"missing {comparison.missing}; dnssync log {dnssync.log_path}"
        )

        # It stays so through a full resync.
        time.sleep(RESYNC_SECONDS + 1)
        values = {key: value for key, (value, _) in read_prefix(plane, zone_prefix).items()}
        again = compare(expected, owned_records(values, OWNER))
        assert again.equal, f"records changed after convergence (seed {seed}): {again}"
        assert dnssync.probe("/readyz")[0] == 200

        # CoreDNS answers every vertex name with exactly the expected addresses.
        resolver = dns_resolver(plane)
        dns_names = 0
        for namespace in namespaces:
            for vertex in VERTICES:
                prefix = names.vertex_etcd_prefix(vertex, "video", namespace)
                hosts = {host for key, host in expected.items() if key.startswith(prefix)}
                assert answers(resolver, vertex_name(namespace, vertex)) == hosts
                dns_names += 1

        # No key of someone else changed, not even rewritten with the same value.
        foreign_after = {key: read_prefix(plane, key).get(key) for key in foreign}
        assert foreign_after == foreign_before
    finally:
        dnssync.stop()
        events.release_all()
        for namespace in namespaces:
            delete_namespace(kube, namespace)
        api_client.close()

    assert sum(faults.counts.values()) == 6
    record_figures(
        SUITE,
        "faults",
        {
            "seed": seed,
            "events": sum(events.counts.values()),
            **{f"events_{kind}": count for kind, count in sorted(events.counts.items())},
            **dict(faults.counts),
            **{f"down_seconds_{what}": round(value, 1) for what, value in faults.downtime.items()},
            "records_expected": len(expected),
            "records_checked": 2 * len(expected),
            "stale": len(comparison.stale),
            "missing": len(comparison.missing),
            "foreign_keys_unchanged": len(foreign),
            "dns_names_checked": dns_names,
            "converge_seconds": round(converge_seconds, 2),
        },
    )
