"""An in-memory RecordStore for unit tests of the plan and its application.

It keeps etcd's semantics that the plan relies on: keys are bytes-ordered
strings, a prefix read is a byte-prefix match, and put and delete compare the
current value (or absence) first, like the transactions of EtcdRecordStore.
"""

from __future__ import annotations


class MemoryStore:
    """A dict behind the RecordStore methods, with a log of the writes made."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})
        self.writes: list[tuple[str, str]] = []

    def get_prefix(self, prefix: str) -> dict[str, str]:
        return {key: value for key, value in self.values.items() if key.startswith(prefix)}

    def put(self, key: str, value: str, *, expected: str | None) -> bool:
        if self.values.get(key) != expected:
            return False
        self.values[key] = value
        self.writes.append(("PUT", key))
        return True

    def delete(self, key: str, *, expected: str) -> bool:
        if self.values.get(key) != expected:
            return False
        del self.values[key]
        self.writes.append(("DELETE", key))
        return True
