"""The JSON-lines journal each UDF process of the demo writes, one event per line.

Every line is flushed as it is written, so a UDF that is killed leaves every
event before its last line intact, and ``read_journal`` skips a torn last line.
Events carry ``event`` (``start``, ``ready``, ``frame``, ``result``,
``exit``) and ``time`` (seconds since the epoch, this machine's clock).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO


class Journal:
    """Appends events to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, event: str, **fields: Any) -> None:
        """Append one event with the current time and flush it."""
        entry = {"event": event, "time": time.time(), **fields}
        self._file.write(json.dumps(entry, separators=(",", ":"), default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Return the events of a journal; a missing file has none, a torn line is skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            events.append(entry)
    return events


def last_event(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """Return the last event called ``name``, or None."""
    return next((entry for entry in reversed(events) if entry.get("event") == name), None)
