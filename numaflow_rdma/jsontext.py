"""Parse JSON that comes from outside the process, with a bound on nesting depth.

``json.loads`` raises RecursionError, not ValueError, for text nested deeper
than the interpreter's recursion limit allows at the current stack depth,
so a handler that catches ValueError lets it through. A value that parses
just under that limit can still overflow the stack later, in any code that
walks it recursively (``json.dumps``, ``copy.deepcopy``). ``loads`` turns
both into one ValueError at a fixed depth.

It also rejects ``NaN``, ``Infinity`` and ``-Infinity``: Python's decoder
accepts them, but they are not JSON, and the Go programs that read the same
values (the API server, Multus, CoreDNS) reject them.
"""

from __future__ import annotations

import json
from typing import Any

# The AdmissionReviews of the Numaflow pods in numaflow_rdma/fixtures nest 10
# levels deep and their Vertex objects 6. A limit of 100 leaves room for any
# real document and stays far below Python's default recursion limit of 1,000.
MAX_DEPTH = 100


class JsonTextError(ValueError):
    """JSON text that is nested too deeply or uses a constant that is not JSON."""


def _reject_constant(name: str) -> None:
    raise JsonTextError(f"{name} is not a JSON value")


def nesting_depth(value: Any) -> int:
    """Return how many arrays and objects deep ``value`` nests; a scalar has depth 0.

    Walks with an explicit stack, so a deep value cannot overflow Python's.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


def loads(text: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text`` as JSON; raise ValueError when it is invalid or nests deeper than ``max_depth``."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise JsonTextError(
            f"the JSON value nests deeper than {max_depth} levels of arrays and objects"
        ) from None
    if nesting_depth(value) > max_depth:
        raise JsonTextError(
            f"the JSON value nests deeper than {max_depth} levels of arrays and objects"
        )
    return value
