"""The plan: creates, updates and deletes over owned records, and the subtree rules."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memorystore import MemoryStore

from numaflow_rdma import names
from numaflow_rdma.dnssync.etcd import DryRunStore, apply_plan
from numaflow_rdma.dnssync.plan import (
    Change,
    ConflictKind,
    CurrentRecord,
    calculate_plan,
    coredns_value_problem,
)

ZONE = "/skydns/local/vertexdomain/"
VERTEX = ZONE + "team/video/infer/"
OWNER = "dnssync-a"
OWNERS = {OWNER}


def value(host: str, owner: str | None = OWNER) -> str:
    if owner is None:
        return json.dumps({"host": host, "port": 7470, "ttl": 30})
    return names.record_value(host, 7470, 30, owner)


def current(values: dict[str, str]) -> dict[str, CurrentRecord]:
    return {key: CurrentRecord.from_value(key, text) for key, text in values.items()}


def test_missing_record_is_created() -> None:
    plan = calculate_plan({VERTEX + "p1": value("198.18.0.1")}, {}, OWNERS)

    assert plan.creates == (Change(VERTEX + "p1", None, value("198.18.0.1")),)
    assert plan.updates == ()
    assert plan.deletes == ()
    assert plan.has_changes


def test_same_record_needs_nothing() -> None:
    values = {VERTEX + "p1": value("198.18.0.1")}

    plan = calculate_plan(values, current(values), OWNERS)

    assert not plan.has_changes
    assert plan.conflicts == ()
    assert plan.owned == 1


def test_changed_address_is_updated() -> None:
    old = value("198.18.0.1")
    new = value("198.18.0.2")

    plan = calculate_plan({VERTEX + "p1": new}, current({VERTEX + "p1": old}), OWNERS)

    assert plan.updates == (Change(VERTEX + "p1", old, new),)
    assert plan.creates == ()


def test_owned_record_without_pod_is_deleted() -> None:
    old = value("198.18.0.1")

    plan = calculate_plan({}, current({VERTEX + "p1": old}), OWNERS)

    assert plan.deletes == (Change(VERTEX + "p1", old, None),)


def test_foreign_record_is_never_touched() -> None:
    foreign = value("198.18.9.9", owner="someone-else")
    unowned = value("198.18.9.8", owner=None)
    values = {ZONE + "other/x/y/a": foreign, ZONE + "other/x/y/b": unowned}

    plan = calculate_plan({}, current(values), OWNERS)

    assert not plan.has_changes
    assert plan.conflicts == ()
    assert plan.owned == 0


def test_foreign_record_at_desired_key_is_conflict() -> None:
    foreign = value("198.18.9.9", owner="someone-else")

    plan = calculate_plan(
        {VERTEX + "p1": value("198.18.0.1")}, current({VERTEX + "p1": foreign}), OWNERS
    )

    assert not plan.has_changes
    assert [(c.key, c.kind) for c in plan.conflicts] == [
        (VERTEX + "p1", ConflictKind.OWNED_BY_OTHER)
    ]
    assert "someone-else" in plan.conflicts[0].detail


def test_unowned_record_at_desired_key_is_conflict() -> None:
    plan = calculate_plan(
        {VERTEX + "p1": value("198.18.0.1")},
        current({VERTEX + "p1": value("198.18.9.9", None)}),
        OWNERS,
    )

    assert not plan.has_changes
    assert plan.conflicts[0].kind is ConflictKind.OWNED_BY_OTHER
    assert "no owner field" in plan.conflicts[0].detail


def test_adopted_owner_record_is_taken_over() -> None:
    former = value("198.18.0.1", owner="dnssync-old")
    gone = value("198.18.0.2", owner="dnssync-old")
    values = {VERTEX + "p1": former, VERTEX + "p2": gone}

    plan = calculate_plan(
        {VERTEX + "p1": value("198.18.0.1")}, current(values), {OWNER, "dnssync-old"}
    )

    assert plan.updates == (Change(VERTEX + "p1", former, value("198.18.0.1")),)
    assert plan.deletes == (Change(VERTEX + "p2", gone, None),)
    assert plan.owned == 2


def test_deletes_are_exact_keys() -> None:
    # pod-1 is owned and gone; pod-10 shares its bytes as a prefix and is someone else's.
    values = {VERTEX + "pod-1": value("198.18.0.1"), VERTEX + "pod-10": value("198.18.0.10", "x")}
    store = MemoryStore(values)

    plan = calculate_plan({}, current(values), OWNERS)
    apply_plan(plan, store)

    assert [change.key for change in plan.deletes] == [VERTEX + "pod-1"]
    assert store.values == {VERTEX + "pod-10": value("198.18.0.10", "x")}


def test_invalid_foreign_value_is_reported() -> None:
    values = {ZONE + "other/x/y/bad": "{not json", VERTEX + "p1": value("198.18.0.1")}

    plan = calculate_plan({VERTEX + "p1": value("198.18.0.1")}, current(values), OWNERS)

    assert not plan.has_changes
    [conflict] = plan.conflicts
    assert conflict.kind is ConflictKind.INVALID_VALUE
    assert conflict.key == ZONE + "other/x/y/bad"
    assert "SERVFAIL" in conflict.detail


def test_deeply_nested_foreign_value_is_reported() -> None:
    deep = '{"host": "198.18.0.9", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    values = {ZONE + "other/x/y/deep": deep}

    plan = calculate_plan({VERTEX + "p1": value("198.18.0.1")}, current(values), OWNERS)

    assert plan.creates == (Change(VERTEX + "p1", None, value("198.18.0.1")),)
    assert plan.deletes == ()
    [conflict] = plan.conflicts
    assert conflict.kind is ConflictKind.INVALID_VALUE
    assert "nests deeper than" in conflict.detail


def test_invalid_value_at_desired_key_is_left_alone() -> None:
    plan = calculate_plan(
        {VERTEX + "p1": value("198.18.0.1")}, current({VERTEX + "p1": "[]"}), OWNERS
    )

    assert not plan.has_changes
    assert [c.kind for c in plan.conflicts] == [ConflictKind.INVALID_VALUE]


def test_foreign_sibling_under_published_vertex_is_reported() -> None:
    foreign = value("198.18.9.9", owner="someone-else")
    values = {VERTEX + "p1": value("198.18.0.1"), VERTEX + "manual": foreign}

    plan = calculate_plan({VERTEX + "p1": value("198.18.0.1")}, current(values), OWNERS)

    assert not plan.has_changes
    assert [(c.key, c.kind) for c in plan.conflicts] == [
        (VERTEX + "manual", ConflictKind.FOREIGN_IN_SUBTREE)
    ]


def test_key_below_pod_key_is_reported() -> None:
    below = VERTEX + "p1/extra"
    values = {below: value("198.18.9.9", owner="someone-else")}

    plan = calculate_plan({VERTEX + "p1": value("198.18.0.1")}, current(values), OWNERS)

    assert [change.key for change in plan.creates] == [VERTEX + "p1"]
    assert [(c.key, c.kind) for c in plan.conflicts] == [(below, ConflictKind.FOREIGN_IN_SUBTREE)]


def test_value_above_published_record_is_reported() -> None:
    vertex_key = VERTEX.rstrip("/")
    pipeline_key = ZONE + "team/video"
    values = {vertex_key: value("198.18.9.9", "x"), pipeline_key: value("198.18.9.8", "x")}

    plan = calculate_plan({VERTEX + "p1": value("198.18.0.1")}, current(values), OWNERS)

    assert sorted((c.key, c.kind) for c in plan.conflicts) == [
        (pipeline_key, ConflictKind.HIDDEN_BY_SUBTREE),
        (vertex_key, ConflictKind.HIDDEN_BY_SUBTREE),
    ]


def test_foreign_record_of_unpublished_vertex_is_not_reported() -> None:
    values = {ZONE + "team/video/decode/manual": value("198.18.9.9", "x")}

    plan = calculate_plan({VERTEX + "p1": value("198.18.0.1")}, current(values), OWNERS)

    assert plan.conflicts == ()


def test_owned_record_at_odd_depth_is_deleted() -> None:
    odd = VERTEX.rstrip("/")

    plan = calculate_plan({}, current({odd: value("198.18.0.1")}), OWNERS)

    assert [change.key for change in plan.deletes] == [odd]


def test_changes_apply_creates_before_deletes() -> None:
    values = {VERTEX + "old": value("198.18.0.1")}

    plan = calculate_plan({VERTEX + "new": value("198.18.0.2")}, current(values), OWNERS)

    assert [(c.old is None, c.new is None) for c in plan.changes] == [(True, False), (False, True)]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{", "not valid JSON"),
        ("", "not valid JSON"),
        ("[]", "not an object"),
        ('"host"', "not an object"),
        ('{"host": 7}', "expected a JSON string"),
        ('{"port": "7470"}', "expected a JSON integer"),
        ('{"port": 7470.5}', "expected a JSON integer"),
        ('{"port": true}', "expected a JSON integer"),
        ('{"ttl": -1}', "out of range"),
        ('{"ttl": 4294967296}', "out of range"),
        ('{"mail": "yes"}', "expected a JSON boolean"),
        ('{"TTL": "30"}', "expected a JSON integer"),
        ('{"port": NaN}', "not valid JSON"),
    ],
)
def test_value_coredns_cannot_decode(text: str, fragment: str) -> None:
    problem = coredns_value_problem(text)

    assert problem is not None
    assert fragment in problem


@pytest.mark.parametrize(
    "text",
    [
        names.record_value("198.18.0.1", 7470, 30, "x"),
        '{"host": "198.18.0.1", "unknown": [1, {"a": 2}]}',
        '{"host": null}',
        "null",
        '{"text": "hello", "mail": false, "priority": 10, "weight": 0, "group": "g"}',
    ],
)
def test_value_coredns_decodes(text: str) -> None:
    assert coredns_value_problem(text) is None


def test_owner_is_read_only_from_valid_values() -> None:
    assert CurrentRecord.from_value("k", value("198.18.0.1")).owner == OWNER
    assert CurrentRecord.from_value("k", '{"host": 1, "owner": "dnssync-a"}').owner is None
    assert CurrentRecord.from_value("k", '{"host": "198.18.0.1", "owner": 7}').owner is None


def test_apply_skips_key_changed_after_read() -> None:
    store = MemoryStore({VERTEX + "p1": value("198.18.0.1")})
    plan = calculate_plan({VERTEX + "p1": value("198.18.0.2")}, current(store.values), OWNERS)
    # Someone else takes the key between the read and the write.
    store.values[VERTEX + "p1"] = value("198.18.9.9", "someone-else")

    result = apply_plan(plan, store)

    assert result.applied == []
    assert [change.key for change in result.conflicts] == [VERTEX + "p1"]
    assert store.values[VERTEX + "p1"] == value("198.18.9.9", "someone-else")


def test_apply_stops_when_leadership_is_lost() -> None:
    desired = {VERTEX + f"p{index}": value(f"198.18.0.{index}") for index in range(3)}
    store = MemoryStore()
    plan = calculate_plan(desired, {}, OWNERS)
    allowed = iter([True, False])

    result = apply_plan(plan, store, lambda: next(allowed, False))

    assert len(result.applied) == 1
    assert result.interrupted
    assert len(store.values) == 1


def test_dry_run_writes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore({VERTEX + "gone": value("198.18.0.9")})
    plan = calculate_plan({VERTEX + "p1": value("198.18.0.1")}, current(store.values), OWNERS)

    with caplog.at_level("INFO"):
        result = apply_plan(plan, DryRunStore(store))

    assert len(result.applied) == 2
    assert store.writes == []
    assert f"Dry run: would create {VERTEX}p1" in caplog.text
    assert f"Dry run: would delete {VERTEX}gone" in caplog.text


# Property: after applying the plan, the owned keys are exactly the desired
# ones that were free or owned, and every foreign value is unchanged.

labels = st.sampled_from(["p1", "p2", "p3", "p10", "x"])
vertices = st.sampled_from(["team/video/infer/", "team/video/decode/", "other/p/v/"])
keys = st.builds(lambda vertex, label: ZONE + vertex + label, vertices, labels)
hosts = st.sampled_from(["198.18.0.1", "198.18.0.2", "2001:db8::1"])
owners = st.sampled_from([OWNER, "dnssync-old", "someone-else", None])
stored = st.one_of(
    st.builds(value, hosts, owners),
    st.sampled_from(["{bad", "[]", '{"port": "x"}']),
)


@settings(max_examples=300, deadline=None)
@given(
    desired=st.dictionaries(keys, st.builds(value, hosts)),
    existing=st.dictionaries(keys, stored),
)
def test_plan_converges_and_spares_foreign(
    desired: dict[str, str], existing: dict[str, str]
) -> None:
    ours = {OWNER, "dnssync-old"}
    before = current(existing)
    store = MemoryStore(existing)

    apply_plan(calculate_plan(desired, before, ours), store)

    after = current(store.values)
    for key, record in before.items():
        if record.owner not in ours:
            assert store.values[key] == existing[key]
    for key, text in desired.items():
        if key not in before or before[key].owner in ours:
            assert store.values[key] == text
    owned_after = {key for key, record in after.items() if record.owner in ours}
    assert owned_after <= set(desired)
    # A second plan over the result has nothing left to do.
    assert not calculate_plan(desired, after, ours).has_changes
