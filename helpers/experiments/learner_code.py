"""Run a learner's exercise code on a thread, with a time limit (the code exercises' checkers).

A learner's bug is the normal case: the code may raise, or never return. ``run_with_time_limit``
keeps what it raised and says whether it finished in time; a thread cannot be stopped, so
the caller makes the code's next step fail (a configuration that raises, a pool it
terminates) and tells the learner to restart the kernel if it keeps spinning.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_with_time_limit(target: Callable[[], None], time_limit: float, *, name: str,
                        what: str) -> BaseException | None:
    """Run ``target()`` on a daemon thread called ``name``, waiting at most ``time_limit``
    seconds. Returns the exception it raised (None if none); raises TimeoutError ("``what``
    had not returned after …") if it is still running then."""
    raised: list[BaseException] = []

    def guarded() -> None:
        try:
            target()
        except Exception as error:  # kept for the checker's hint, never re-raised here
            raised.append(error)

    thread = threading.Thread(target=guarded, name=name, daemon=True)
    thread.start()
    thread.join(time_limit)
    if thread.is_alive():
        raise TimeoutError(f"{what} had not returned after {time_limit:g} s")
    return raised[0] if raised else None
