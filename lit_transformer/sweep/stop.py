"""Stopping a sweep (README, "Stopping a sweep"): SIGTERM and Ctrl-C raise where the process is,
so that a worker can tell the study that its trial was stopped before it goes; inside a write
to the study (:func:`held`) they wait until the write is done.

One stop is enough: once it arrives, further SIGINT and SIGTERM are ignored while the process
tells the study and exits (SIGKILL still ends it).

A worker of a `sweep` is stopped three ways: Ctrl-C at its terminal (SIGINT, to the whole
foreground group), ``kill PID`` (SIGTERM, to it alone, or passed on by a `--workers N` parent)
and ``kill -- -PGID`` or a cluster's preemption (SIGTERM to every process, trials included).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from lit_transformer.errors import Terminated

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _State:
    depth = 0  # how many held() blocks the main thread is in
    pending: BaseException | None = None  # the stop that arrived inside one


_state = _State()


def _on_stop(signum: int, frame: object) -> None:
    # One stop is enough: a second one (Ctrl-C again, the parent passing SIGTERM on after the
    # group already had it) would cut the first one's unwinding, and its writes, short.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    exc = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    if _state.depth:
        _state.pending = _state.pending or exc
        return
    raise exc


@contextmanager
def stops_raise() -> Iterator[None]:
    """In the block, SIGTERM raises :class:`Terminated` and SIGINT ``KeyboardInterrupt`` (SIGINT
    stays ignored where it was, as in a job started with ``&``), each deferred by
    :func:`held`; the handlers from before come back after it. Main thread only (elsewhere the
    block changes nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    signal.signal(signal.SIGTERM, _on_stop)
    if before[signal.SIGINT] is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _on_stop)
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


@contextmanager
def held() -> Iterator[None]:
    """A stop that arrives in the block is raised when it ends: a claim, a result or a retry
    is written to the study whole. (Python runs signal handlers in the main thread, whichever
    thread the signal reached, so a flag works where a thread's signal mask would not; in
    another thread the block changes nothing.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if not _state.depth and _state.pending is not None:
            exc, _state.pending = _state.pending, None
            raise exc
