"""``bench claims``: how fast workers can claim trials of one study, with no training.

Each of N processes runs the claim path of a sweep worker (``orchestrator.claim_next``):
take the study lock, fail stale trials, claim the next WAITING trial, record its heartbeat,
release the lock, then tell the trial COMPLETE at once. The study's claim rate is bounded by
the time the lock is held, since claims are serial; the wait grows with the number of
workers. This bounds how short trials can be, or how many workers one study can serve
(README, "Which storage at what scale")."""

from __future__ import annotations

import multiprocessing
import statistics
import time
from types import SimpleNamespace
from typing import Any

from optuna.trial import TrialState

from lit_transformer.sweep.storage import load_or_create_study, open_storage, redact


def _claimer(url: str, name: str, out: multiprocessing.Queue) -> None:
    import optuna

    from lit_transformer.sweep.orchestrator import claim_next

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    study = load_or_create_study(storage, name)
    grid = SimpleNamespace(kind="grid")  # claim() reads the kind only
    timings = []
    while True:
        trial, timing = claim_next(storage, study, name, grid)
        if trial is None:
            break
        study.tell(trial, 0.0)
        timings.append((timing["lock_wait_s"], timing["claim_s"]))
    out.put(timings)


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "mean_ms": 1e3 * statistics.fmean(ordered),
        "p95_ms": 1e3 * ordered[int(0.95 * (len(ordered) - 1))],
        "max_ms": 1e3 * ordered[-1],
    }


def bench_claims(url: str, workers: int, trials: int) -> dict[str, Any]:
    from lit_transformer.config import ConfigError
    from lit_transformer.sweep.orchestrator import hardware

    if workers < 1 or trials < workers:
        raise ConfigError(f"need 1 <= --workers <= --trials, got {workers} and {trials}")
    name = f"bench-claims-{int(time.time() * 1000)}"
    study = load_or_create_study(open_storage(url), name)
    for seed in range(trials):
        study.enqueue_trial({"row": "base", "seed": seed})
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(url, name, queue)) for _ in range(workers)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    timings = [t for _ in procs for t in queue.get(timeout=3600)]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if complete != trials or len(timings) != trials:
        raise RuntimeError(f"{complete} COMPLETE and {len(timings)} claims of {trials} trials")
    return {
        "storage": redact(url),
        "study": name,
        "hardware": hardware(),
        "workers": workers,
        "trials": trials,
        "wall_s": wall,  # includes each process's start (imports, connecting)
        "claims_per_s": trials / wall,
        "lock_wait": _summary([w for w, _ in timings]),
        "lock_held": _summary([h for _, h in timings]),
        "max_claims_per_s": 1.0 / statistics.fmean(h for _, h in timings),
    }
