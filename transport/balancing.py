"""Peer choice: which receiver gets the next frame.

- ``round_robin`` (default): the next peer in turn that has a free credit,
  or, when none has, the next peer in turn.
- ``least_outstanding``: the peer with the fewest frames in flight and
  waiting; ties go round robin.
- ``key_affinity``: frames with the same key (a camera or stream id) go to
  the same peer while that peer lives. A new key is placed by rendezvous
  hashing (highest random weight) over the peers present at that moment,
  so senders that see the same peers place a key on the same receiver; the
  placement is then remembered, so a receiver joining later does not take
  streams from receivers that are still alive. Frames without a key go
  round robin.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, TypeVar

POLICY_NAMES = ("round_robin", "least_outstanding", "key_affinity")

# Keys remembered by key affinity; the least recently used is forgotten first.
MAX_REMEMBERED_KEYS = 65536


class Candidate(Protocol):
    """The view of a peer that peer choice works on."""

    @property
    def peer_id(self) -> str:
        """A stable identity, ``host:port``."""
        ...

    @property
    def outstanding(self) -> int:
        """Frames in flight plus frames waiting for this peer."""
        ...

    @property
    def has_credit(self) -> bool:
        """Whether a frame can be sent to this peer right now."""
        ...


C = TypeVar("C", bound=Candidate)


class PeerChoice:
    """Base class of the policies; ``choose`` returns None only when there is no peer."""

    name = ""
    binds_to_peer = False
    """True when a frame must wait for its chosen peer instead of any peer with a credit."""

    def choose(self, peers: Sequence[C], key: str | None) -> C | None:
        """Pick one of ``peers`` (sorted by peer_id) for a frame with ``key``."""
        raise NotImplementedError

    def forget(self, peer_id: str) -> None:
        """Drop what is remembered about a peer that is gone."""


class RoundRobin(PeerChoice):
    """The next peer in turn, preferring peers with a free credit."""

    name = "round_robin"

    def __init__(self) -> None:
        self._next = 0

    def choose(self, peers: Sequence[C], key: str | None) -> C | None:
        """Return the first peer with a credit from the turn on, else the peer whose turn it is."""
        if not peers:
            return None
        start = self._next % len(peers)
        for offset in range(len(peers)):
            index = (start + offset) % len(peers)
            if peers[index].has_credit:
                self._next = index + 1
                return peers[index]
        self._next = start + 1
        return peers[start]


class LeastOutstanding(PeerChoice):
    """The peer with the fewest frames in flight and waiting."""

    name = "least_outstanding"

    def __init__(self) -> None:
        self._turns = RoundRobin()

    def choose(self, peers: Sequence[C], key: str | None) -> C | None:
        """Return a least-loaded peer, taking turns among equals."""
        if not peers:
            return None
        fewest = min(peer.outstanding for peer in peers)
        return self._turns.choose([peer for peer in peers if peer.outstanding == fewest], key)


def rendezvous_weight(key: str, peer_id: str) -> int:
    """Return the rendezvous-hashing weight of ``peer_id`` for ``key``; the highest weight wins."""
    digest = hashlib.blake2b(f"{key}\0{peer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class KeyAffinity(PeerChoice):
    """One peer per key for as long as that peer lives."""

    name = "key_affinity"
    binds_to_peer = True

    def __init__(self, max_keys: int = MAX_REMEMBERED_KEYS) -> None:
        self._placements: OrderedDict[str, str] = OrderedDict()
        self._max_keys = max_keys
        self._without_key = RoundRobin()

    def choose(self, peers: Sequence[C], key: str | None) -> C | None:
        """Return the key's peer; place the key by rendezvous hashing if it has none alive."""
        if not peers:
            return None
        if key is None:
            return self._without_key.choose(peers, key)
        placed = self._placements.get(key)
        if placed is not None:
            for peer in peers:
                if peer.peer_id == placed:
                    self._placements.move_to_end(key)
                    return peer
        chosen = max(peers, key=lambda peer: rendezvous_weight(key, peer.peer_id))
        self._placements[key] = chosen.peer_id
        self._placements.move_to_end(key)
        while len(self._placements) > self._max_keys:
            self._placements.popitem(last=False)
        return chosen

    def forget(self, peer_id: str) -> None:
        """Forget the placements on a peer that is gone, so its keys move on."""
        for key in [key for key, placed in self._placements.items() if placed == peer_id]:
            del self._placements[key]


def make_peer_choice(name: str) -> PeerChoice:
    """Return a new policy object for ``name``; raise ValueError for an unknown name."""
    policies: dict[str, type[PeerChoice]] = {
        "round_robin": RoundRobin,
        "least_outstanding": LeastOutstanding,
        "key_affinity": KeyAffinity,
    }
    policy = policies.get(name)
    if policy is None:
        raise ValueError(f"invalid peer choice {name!r}: expected one of {', '.join(POLICY_NAMES)}")
    return policy()
