"""Graceful shutdown of ``falproxy serve``: drain on SIGTERM, finish streams, exit 0.

On SIGTERM uvicorn stops accepting, lets running responses finish for
``timeout_graceful_shutdown`` (our ``shutdown_grace``) and cancels what is left. Two gaps
are closed here:

- uvicorn does not tell the app that draining began, so ``/readyz`` could not say so. The
  standalone server's factory runs inside uvicorn's signal capture in every worker (with
  ``--workers N`` too, where the supervisor forwards SIGTERM to each worker, and where a
  ``uvicorn.Server`` subclass would not be used), so it chains a handler in front of
  uvicorn's that marks the process as draining.
- after a graceful shutdown uvicorn re-raises the signal it caught, so an untouched process
  dies "killed by SIGTERM" (status 143) even though nothing went wrong. Orchestrators read
  that as a crash; :func:`exit_zero_on_sigterm` makes a drained process exit 0.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from falproxy.ops.readiness import begin_process_drain

# The signals an orchestrator or a terminal uses to stop a server.
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT)

Handler = Callable[[int, FrameType | None], Any] | int | None


def chain_drain_on_exit_signals() -> bool:
    """Mark the process as draining on SIGTERM/SIGINT, then run the handler in place.

    Returns false (and changes nothing) off the main thread, where Python cannot install
    signal handlers, e.g. when the app is served from a test thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in EXIT_SIGNALS:
        signal.signal(sig, _draining_then(signal.getsignal(sig)))
    return True


def exit_zero_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit(0)`` outside uvicorn's own handling.

    Installed before the server starts: a SIGTERM during start-up exits cleanly, and the
    signal uvicorn re-raises after draining ends the process with status 0.
    """
    signal.signal(signal.SIGTERM, _exit_zero)


def _exit_zero(sig: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _draining_then(previous: Handler) -> Callable[[int, FrameType | None], None]:
    def handler(sig: int, frame: FrameType | None) -> None:
        begin_process_drain()
        if callable(previous):
            previous(sig, frame)
        elif previous == signal.SIG_DFL and sig == signal.SIGINT:
            raise KeyboardInterrupt
        elif previous == signal.SIG_DFL:
            raise SystemExit(128 + sig)

    return handler
