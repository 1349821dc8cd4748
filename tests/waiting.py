"""Waiting, boundedly, for something another thread or process does."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(
    condition: Callable[[], object],
    seconds: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    poll: float = 0.05,
) -> None:
    """Return once ``condition()`` is true; fail after ``seconds`` saying
    ``what`` was not seen, or at once if ``alive()`` says the worker died."""
    deadline = time.monotonic() + seconds
    while not condition():
        if alive is not None:
            assert alive(), f"the worker stopped before {what}"
        assert time.monotonic() < deadline, f"not seen within {seconds}s: {what}"
        time.sleep(poll)
