"""Progress lines for people watching the demo, and the error that names the failed step."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")


DEFAULT_ADVICE = (
    "run the demo again with --keep-work-dir and read the logs in the work folder it prints"
)


class DemoError(RuntimeError):
    """A demo step that failed, with what to do about it."""

    def __init__(self, step: str, message: str, advice: str = DEFAULT_ADVICE) -> None:
        super().__init__(f"{step} failed: {message}")
        self.step = step
        self.message = message
        self.advice = advice

    def describe(self) -> str:
        """Return the failure and the advice as lines for the terminal."""
        text = f"The demo failed at step '{self.step}': {self.message}"
        if self.advice:
            text += f"\nWhat to do: {self.advice}"
        return text


class Progress:
    """Prints one line per step, with the time since the demo started.

    ``stream`` None silences it, which the tests use.
    """

    def __init__(self, stream: TextIO | None = sys.stderr) -> None:
        self._stream = stream
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self.current_step = "start-up"

    def elapsed(self) -> float:
        """Return seconds since the demo started."""
        return time.monotonic() - self._started

    def say(self, message: str) -> None:
        """Print one line."""
        if self._stream is None:
            return
        with self._lock:
            print(f"[{self.elapsed():6.1f}s] {message}", file=self._stream, flush=True)

    @contextlib.contextmanager
    def step(self, title: str, advice: str = DEFAULT_ADVICE) -> Iterator[None]:
        """Announce a step; turn any exception inside it into a DemoError naming it.

        KeyboardInterrupt and DemoError pass through unchanged.
        """
        self.current_step = title
        self.say(f"{title} ...")
        started = time.monotonic()
        try:
            yield
        except (DemoError, KeyboardInterrupt):
            raise
        except Exception as error:
            raise DemoError(title, f"{type(error).__name__}: {error}", advice) from error
        self.say(f"{title}: done in {time.monotonic() - started:.1f} s")

    def while_running(
        self, work: Callable[[], T], message: str, interval: float = 30.0
    ) -> T:
        """Run ``work`` and print ``message`` with the seconds spent every ``interval`` s until it ends."""
        done = threading.Event()
        started = time.monotonic()

        def remind() -> None:
            while not done.wait(interval):
                self.say(f"{message} ({time.monotonic() - started:.0f} s so far)")

        reminder = threading.Thread(target=remind, name="demo-progress", daemon=True)
        reminder.start()
        try:
            return work()
        finally:
            done.set()
            reminder.join(timeout=1)
