"""Round robin, least outstanding and key affinity over fake peers."""

from __future__ import annotations

import collections
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from numaflow_rdma.transport.balancing import (
    KeyAffinity,
    LeastOutstanding,
    RoundRobin,
    make_peer_choice,
)


@dataclass
class Peer:
    peer_id: str
    outstanding: int = 0
    has_credit: bool = True


def _peers(count: int) -> list[Peer]:
    return [Peer(f"198.18.0.{index}:7470") for index in range(2, count + 2)]


def test_round_robin_takes_turns() -> None:
    peers = _peers(3)
    choice = RoundRobin()
    picked = [choice.choose(peers, None) for _ in range(6)]
    assert [peer.peer_id for peer in picked if peer] == [peer.peer_id for peer in peers] * 2


def test_round_robin_skips_peers_without_credit() -> None:
    peers = _peers(3)
    peers[1].has_credit = False
    choice = RoundRobin()
    picked = {choice.choose(peers, None).peer_id for _ in range(6)}  # type: ignore[union-attr]
    assert picked == {peers[0].peer_id, peers[2].peer_id}


def test_round_robin_without_credit_anywhere_still_picks() -> None:
    peers = _peers(2)
    for peer in peers:
        peer.has_credit = False
    assert RoundRobin().choose(peers, None) is peers[0]
    assert RoundRobin().choose([], None) is None


def test_least_outstanding_prefers_idle_peer() -> None:
    peers = _peers(3)
    peers[0].outstanding = 4
    peers[1].outstanding = 1
    peers[2].outstanding = 1
    choice = LeastOutstanding()
    picked = [choice.choose(peers, None) for _ in range(4)]
    assert {peer.peer_id for peer in picked if peer} == {peers[1].peer_id, peers[2].peer_id}


def test_key_affinity_survives_new_peer() -> None:
    peers = _peers(3)
    choice = KeyAffinity()
    before = {f"cam-{index}": choice.choose(peers, f"cam-{index}") for index in range(50)}
    grown = [*peers, Peer("198.18.0.9:7470")]
    after = {key: choice.choose(grown, key) for key in before}
    assert after == before


def test_key_affinity_moves_only_keys_of_lost_peer() -> None:
    peers = _peers(3)
    choice = KeyAffinity()
    before = {f"cam-{index}": choice.choose(peers, f"cam-{index}") for index in range(60)}
    lost = peers[1]
    choice.forget(lost.peer_id)
    remaining = [peers[0], peers[2]]
    after = {key: choice.choose(remaining, key) for key in before}
    for key, peer in before.items():
        if peer is not lost:
            assert after[key] is peer, key
        else:
            assert after[key] in remaining


def test_key_affinity_spreads_keys() -> None:
    peers = _peers(3)
    choice = KeyAffinity()
    counts = collections.Counter(
        choice.choose(peers, f"camera-{index}").peer_id  # type: ignore[union-attr]
        for index in range(300)
    )
    assert len(counts) == 3
    assert min(counts.values()) > 50, counts


def test_key_affinity_without_key_takes_turns() -> None:
    peers = _peers(2)
    choice = make_peer_choice("key_affinity")
    assert {choice.choose(peers, None).peer_id for _ in range(2)} == {  # type: ignore[union-attr]
        peer.peer_id for peer in peers
    }


@given(
    keys=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=20),
    count=st.integers(min_value=1, max_value=8),
)
def test_key_affinity_agrees_across_senders(keys: list[str], count: int) -> None:
    peers = _peers(count)
    first, second = KeyAffinity(), KeyAffinity()
    for key in keys:
        assert first.choose(peers, key) is second.choose(list(reversed(peers)), key)
