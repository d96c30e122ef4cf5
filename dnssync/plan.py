"""The plan: which etcd keys to create, update and delete so etcd contains the desired records.

Desired records (from the API) and current values (read from etcd under the
zone prefix) meet here, in pure functions with no I/O. Only records whose
owner field names this instance, or a former leader of its Lease, are ever
changed:

    desired | current value at the key             | action
    --------+--------------------------------------+-----------------------------
    yes     | none                                 | create
    yes     | ours, the same value                 | nothing
    yes     | ours, another value or owner         | update
    yes     | someone else's, or unparsable        | nothing, reported as conflict
    no      | ours                                 | delete
    no      | someone else's                       | nothing

The CoreDNS etcd plugin answers a name with every record in its subtree and
answers a key's own value only when nothing sits below it. It also fails the
whole lookup (SERVFAIL) when one value in the subtree is not valid JSON of its
record type. So the plan also reports, without touching them:

- unparsable values anywhere under the zone, because every name above them
  fails;
- someone else's records under a vertex name this instance publishes, because
  they are added to that vertex's answers, including keys below a pod's own
  key, which also replace that pod's answer;
- someone else's values at a key above a published record, because CoreDNS
  stops answering them once records exist below.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from numaflow_rdma import jsontext, names

# The fields of the CoreDNS etcd plugin's record (its msg.Service type) and the
# JSON types Go's decoder accepts for each. Go matches field names without
# regard to case and ignores fields it does not know.
_INT64_RANGE = (-(2**63), 2**63 - 1)
_SERVICE_FIELDS: Mapping[str, tuple[type, tuple[int, int] | None]] = {
    "host": (str, None),
    "port": (int, _INT64_RANGE),
    "priority": (int, _INT64_RANGE),
    "weight": (int, _INT64_RANGE),
    "text": (str, None),
    "mail": (bool, None),
    "ttl": (int, (0, 2**32 - 1)),
    "targetstrip": (int, _INT64_RANGE),
    "group": (str, None),
}


def coredns_value_problem(value: str) -> str | None:
    """Return why CoreDNS cannot decode ``value`` as a record, or None when it can.

    A value nested deeper than ``jsontext.MAX_DEPTH`` counts as undecodable
    although Go would decode it. No record nests at all.
    """
    try:
        decoded = jsontext.loads(value)
    except ValueError as error:
        return f"not valid JSON ({error})"
    if decoded is None:
        return None
    if not isinstance(decoded, dict):
        return f"a JSON {type(decoded).__name__}, not an object"
    for name, item in decoded.items():
        spec = _SERVICE_FIELDS.get(name.lower())
        if spec is None or item is None:
            continue
        expected, bounds = spec
        # bool is a subclass of int in Python, but not a number in JSON.
        if not isinstance(item, expected) or (expected is int and isinstance(item, bool)):
            return f"field {name!r} is {item!r}, expected a JSON {_json_type(expected)}"
        if bounds is not None and isinstance(item, int) and not bounds[0] <= item <= bounds[1]:
            return f"field {name!r} is {item}, out of range {bounds[0]}..{bounds[1]}"
    return None


def _json_type(python_type: type) -> str:
    return {str: "string", int: "integer", bool: "boolean"}[python_type]


@dataclass(frozen=True)
class CurrentRecord:
    """A value found in etcd under the zone, with its owner field and whether CoreDNS can read it."""

    key: str
    value: str
    owner: str | None
    problem: str | None

    @classmethod
    def from_value(cls, key: str, value: str) -> CurrentRecord:
        """Parse a raw etcd value; an owner is only read from a value CoreDNS accepts."""
        problem = coredns_value_problem(value)
        owner = None
        if problem is None:
            decoded: Any = jsontext.loads(value)
            if isinstance(decoded, dict) and isinstance(decoded.get(names.RECORD_OWNER_FIELD), str):
                owner = decoded[names.RECORD_OWNER_FIELD]
        return cls(key=key, value=value, owner=owner, problem=problem)


@dataclass(frozen=True)
class Change:
    """One key to write or remove: ``old`` is the value read (None to create), ``new`` None to delete."""

    key: str
    old: str | None
    new: str | None


class ConflictKind(enum.Enum):
    """The reason the plan reports a key it does not change."""

    OWNED_BY_OTHER = "owned-by-other"
    """A desired key contains someone else's record, so this instance does not write it."""
    INVALID_VALUE = "invalid-value"
    """A value CoreDNS cannot decode, so every name above it answers SERVFAIL."""
    FOREIGN_IN_SUBTREE = "foreign-in-subtree"
    """Someone else's record under a published vertex name, added to that vertex's answers."""
    HIDDEN_BY_SUBTREE = "hidden-by-subtree"
    """Someone else's value above a published record, which CoreDNS no longer answers."""


@dataclass(frozen=True)
class Conflict:
    """A key the plan leaves alone and reports."""

    key: str
    kind: ConflictKind
    detail: str


@dataclass(frozen=True)
class Plan:
    """The changes that make etcd hold the desired records, and the conflicts found on the way."""

    creates: tuple[Change, ...] = ()
    updates: tuple[Change, ...] = ()
    deletes: tuple[Change, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    owned: int = 0
    """Records found in etcd that this instance owns or adopts."""

    @property
    def has_changes(self) -> bool:
        """Tell whether anything is to be written or removed."""
        return bool(self.creates or self.updates or self.deletes)

    @property
    def changes(self) -> tuple[Change, ...]:
        """Return every change in the order to apply them: creates, updates, then deletes.

        Creating first means a vertex keeps answering while its pods are replaced.
        """
        return self.creates + self.updates + self.deletes


@dataclass
class _Builder:
    creates: list[Change] = field(default_factory=list)
    updates: list[Change] = field(default_factory=list)
    deletes: list[Change] = field(default_factory=list)
    conflicts: dict[tuple[str, ConflictKind], Conflict] = field(default_factory=dict)

    def conflict(self, key: str, kind: ConflictKind, detail: str) -> None:
        self.conflicts.setdefault((key, kind), Conflict(key, kind, detail))


def calculate_plan(
    desired: Mapping[str, str],
    current: Mapping[str, CurrentRecord],
    owners: Collection[str],
) -> Plan:
    """Return the plan that turns ``current`` into ``desired`` for the records ``owners`` own.

    ``desired`` maps etcd keys to record values. ``current`` contains every
    value read under the zone prefix. ``owners`` are the owner ids whose records
    this instance may change: its own, and those of former leaders it adopts.
    """
    builder = _Builder()
    owned = sum(1 for record in current.values() if record.owner in owners)

    # First, every desired key: create, update, or leave alone when it is someone else's.
    for key in sorted(desired):
        record = current.get(key)
        if record is None:
            builder.creates.append(Change(key, None, desired[key]))
        elif record.owner in owners:
            if record.value != desired[key]:
                builder.updates.append(Change(key, record.value, desired[key]))
        elif record.problem is not None:
            builder.conflict(key, ConflictKind.INVALID_VALUE, _invalid_detail(key, record.problem))
        else:
            builder.conflict(
                key,
                ConflictKind.OWNED_BY_OTHER,
                f"owned by {record.owner or 'nobody (no owner field)'}, so the pod's record is not written",
            )

    # Then every owned record that no pod wants any more.
    for key in sorted(current):
        if current[key].owner in owners and key not in desired:
            builder.deletes.append(Change(key, current[key].value, None))

    # Last, the subtree rules over someone else's values.
    _report_foreign_values(desired, current, owners, builder)
    return Plan(
        creates=tuple(builder.creates),
        updates=tuple(builder.updates),
        deletes=tuple(builder.deletes),
        conflicts=tuple(
            builder.conflicts[index] for index in sorted(builder.conflicts, key=_order)
        ),
        owned=owned,
    )


def _order(index: tuple[str, ConflictKind]) -> tuple[str, str]:
    return index[0], index[1].value


def _invalid_detail(key: str, problem: str) -> str:
    return f"{problem}; CoreDNS answers SERVFAIL for every name above {key}"


def _report_foreign_values(
    desired: Mapping[str, str],
    current: Mapping[str, CurrentRecord],
    owners: Collection[str],
    builder: _Builder,
) -> None:
    vertex_prefixes = {key.rsplit("/", 1)[0] + "/" for key in desired}
    vertex_depths = sorted({prefix.count("/") for prefix in vertex_prefixes})
    ancestors = {ancestor for key in desired for ancestor in _ancestor_keys(key)}
    for key, record in current.items():
        if record.owner in owners:
            continue
        if record.problem is not None:
            builder.conflict(key, ConflictKind.INVALID_VALUE, _invalid_detail(key, record.problem))
        if key in desired:
            continue
        parts = key.split("/")
        vertex_prefix = next(
            (
                "/".join(parts[:depth]) + "/"
                for depth in vertex_depths
                if len(parts) > depth and "/".join(parts[:depth]) + "/" in vertex_prefixes
            ),
            None,
        )
        if vertex_prefix is not None:
            builder.conflict(
                key,
                ConflictKind.FOREIGN_IN_SUBTREE,
                f"someone else's record under published {vertex_prefix}, so CoreDNS adds it to "
                "that name's answers",
            )
        elif key in ancestors:
            builder.conflict(
                key,
                ConflictKind.HIDDEN_BY_SUBTREE,
                "someone else's value above published records, which CoreDNS no longer answers",
            )


def _ancestor_keys(key: str) -> list[str]:
    """Return the keys above ``key`` up to its vertex key, the names CoreDNS answers from it."""
    parts = key.split("/")
    # A record key is <prefix>/<zone labels>/<namespace>/<pipeline>/<vertex>/<pod>; the
    # namespace, pipeline and vertex keys sit one to three levels above it.
    return ["/".join(parts[:end]) for end in range(len(parts) - 3, len(parts))]
