"""``sweep SPEC --plan``: a study's trials, steps, tokens and device-hours, before anything runs.

Each trial's configuration is composed as the trial composes it (``SweepSpec.trial_overrides``
on ``Ablation.row_config``: the spec's overrides, its budget, its devices). Nothing is stored,
read or trained, and no torch is imported. For one trial, with r target tokens/s per device:

    D  devices          = trainer.devices × trainer.num_nodes
    B  tokens per step  = D × data.max_tokens × trainer.accumulate_grad_batches, per side
                          (source and target each; the padded budget, what a device computes)
    S  steps            = trainer.max_steps (the budget's, row_scale included)
    T  tokens per trial = S × B
    device-hours        = T / r / 3600
    wall-hours          = device-hours / D     (the D devices each at r, in parallel)

A time budget of M minutes gives wall-hours = M / 60 and S ≈ 60·M·r·D / B; with both a step
and a time limit, whichever ends training first. Hours count training steps only: periodic
validation, set-up and the final evaluation come on top. One r serves every row, so a row that
computes more per token than the model measured (big, C-d1024 against base) takes longer
than shown. ``gpu-check`` (one GPU) and ``bench train`` (the CPU) measure r on full batches,
the rate of the padded positions that B counts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_transformer.config import ConfigError, RunConfig
from lit_transformer.sweep.spec import SweepSpec

# Config keys an hpo search may sample that change steps, tokens or time: its trials then
# differ from the row's values the plan shows.
_SIZE_KEYS = {
    "trainer.max_steps",
    "trainer.max_minutes",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.accumulate_grad_batches",
    "data.max_tokens",
}
# Where each kind of result file keeps its target tokens/s, first match wins.
_RATE_KEYS = (
    (("tgt_tokens_per_s",), "tgt_tokens_per_s"),
    (("speed_compiled", "tgt_tokens_per_s"), "gpu-check, compiled"),  # only if trials compile
    (("speed", "tgt_tokens_per_s"), "gpu-check"),
    (("ours", "tgt_tokens_per_s"), "bench train"),
)


@dataclass(frozen=True)
class TrialPlan:
    """One trial's size: D devices, B tokens per step and its step and time limits."""

    number: int
    row: str
    seed: int
    devices: int
    tokens_per_step: int
    max_steps: int | None  # None: no step limit
    max_minutes: float | None  # None: no time limit

    def steps(self, rate: float | None) -> float | None:
        """S: the step limit, or the steps a time limit allows at ``rate`` if fewer."""
        limits = [] if self.max_steps is None else [float(self.max_steps)]
        if self.max_minutes is not None and rate:
            limits.append(60 * self.max_minutes * rate * self.devices / self.tokens_per_step)
        return min(limits) if limits else None

    def tokens(self, rate: float | None) -> float | None:
        steps = self.steps(rate)
        return None if steps is None else steps * self.tokens_per_step

    def wall_hours(self, rate: float | None) -> float | None:
        """T / (r·D) / 3600, or M / 60 if training stops on its time limit first."""
        limits = [] if self.max_minutes is None else [self.max_minutes / 60]
        if self.max_steps is not None and rate:
            limits.append(self.max_steps * self.tokens_per_step / (rate * self.devices) / 3600)
        return min(limits) if limits else None

    def device_hours(self, rate: float | None) -> float | None:
        hours = self.wall_hours(rate)
        return None if hours is None else hours * self.devices


@dataclass
class Plan:
    study: str
    spec: SweepSpec
    trials: list[TrialPlan]
    rate: float | None = None  # r: target tokens/s per device
    rate_source: str | None = None
    measure: list[str] = field(default_factory=list)  # commands that measure r


def trial_config(spec: SweepSpec, row: str) -> RunConfig:
    """A trial's configuration as ``run_trial`` composes it (at the row's values for hpo)."""
    return spec.ablation.row_config(row, spec.trial_overrides({"row": row}))


def trial_plan(number: int, row: str, seed: int, cfg: RunConfig) -> TrialPlan:
    tr = cfg.trainer
    devices = tr.devices * tr.num_nodes
    return TrialPlan(
        number=number,
        row=row,
        seed=seed,
        devices=devices,
        tokens_per_step=devices * cfg.data.max_tokens * tr.accumulate_grad_batches,
        max_steps=tr.max_steps if tr.max_steps > 0 else None,
        max_minutes=tr.max_minutes,
    )


def measure_commands(cfg: RunConfig) -> list[str]:
    """The commands that measure r for a model like ``cfg``'s, at its per-device batch."""
    m, d = cfg.model, cfg.data
    length = 32  # gpu-check's default sentence length, both sides
    return [
        f"on one GPU (the paper's base): lit-transformer gpu-check --tokens {d.max_tokens} "
        "--out gpu.json",
        f"on the CPU: lit-transformer bench train --d-model {m.d_model} --heads {m.heads} "
        f"--layers {m.n_layers} --d-ff {m.d_ff} --vocab-size {d.vocab_size} "
        f"--batch-size {max(1, d.max_tokens // length)} --src-len {length} --tgt-len {length} "
        "--json > bench.json",
    ]


def positive_rate(value: Any, what: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what} must be a positive number of tokens/s, got {value!r}")
    return float(value)


def bench_rate(path: str | Path, compiled: bool = False) -> tuple[float, str]:
    """r from a result file: ``gpu-check --out FILE``, ``bench train --json > FILE``, or
    ``{"tgt_tokens_per_s": N}``; returns (r, where it came from)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the bench file ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not the JSON of bench train or gpu-check ({exc})") from None
    for keys, source in _RATE_KEYS:
        if source == "gpu-check, compiled" and not compiled:
            continue
        node: Any = raw
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            where = (raw.get("device") or raw.get("cpu")) if isinstance(raw, dict) else None
            label = f"{path}: {source}" + (f" on {where}" if where else "")
            return positive_rate(node, f"{path}: {'.'.join(keys)}"), label
    raise ConfigError(
        f"{path}: no tgt_tokens_per_s in it (expected the JSON of `gpu-check --out FILE` or "
        "`bench train --json`)"
    )


def plan_study(
    spec: SweepSpec,
    study: str | None = None,
    tokens_per_s: float | None = None,
    bench: str | Path | None = None,
) -> Plan:
    """Every trial of ``spec`` with its size, and r from ``tokens_per_s`` or ``bench``."""
    if tokens_per_s is not None and bench is not None:
        raise ConfigError("give --tokens-per-s or --bench, not both")
    configs = {row: trial_config(spec, row) for row in spec.rows}
    trials = [trial_plan(n, row, seed, configs[row]) for n, (row, seed) in enumerate(spec.trials)]
    plan = Plan(spec.study if study is None else study, spec, trials)
    first = configs[spec.rows[0]]
    if tokens_per_s is not None:
        plan.rate = positive_rate(tokens_per_s, "--tokens-per-s")
        plan.rate_source = "--tokens-per-s"
    elif bench is not None:
        plan.rate, plan.rate_source = bench_rate(bench, compiled=first.trainer.compile)
    else:
        plan.measure = measure_commands(first)
    return plan


def _count(value: float | None) -> str:
    return "-" if value is None else f"{round(value):,}"


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _aligned(rows: list[list[str]], left: int) -> list[str]:
    """Columns padded to their widest cell: the first ``left`` flush left, numbers right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_plan(plan: Plan) -> str:
    """The plan as text: a header, one line per trial, the totals and notes."""
    spec, r = plan.spec, plan.rate
    n = len(plan.trials)
    if spec.kind == "grid":
        rows, seeds = len(spec.rows), len(spec.seeds)
        count = f"{rows} row(s) × {seeds} seed(s) = {n} trial(s)"
    else:
        count = f"hpo of row {spec.rows[0]}: {n} trial(s), seeds {spec.seeds} in turn"
    lines = [
        f"plan of study {plan.study} ({spec.kind}, {spec.protocol}): {count}",
        "tokens/step = devices × data.max_tokens × trainer.accumulate_grad_batches, per side",
        "  (as many source as target tokens; the padded budget)",
    ]
    if r is not None:
        lines += [
            f"hours at {r:,.0f} target tokens/s per device ({plan.rate_source}):",
            "  device-h = tokens / (tokens/s) / 3600, wall-h = device-h / devices",
        ]
    header = ["#", "row", "seed", "devices", "steps", "tokens/step", "tokens", "device-h", "wall-h"]
    table = [header]
    for t in plan.trials:
        approx = "~" if t.max_minutes is not None and t.steps(r) is not None else ""
        table.append(
            [
                str(t.number),
                t.row,
                str(t.seed),
                str(t.devices),
                approx + _count(t.steps(r)),
                f"{t.tokens_per_step:,}",
                approx + _count(t.tokens(r)),
                _hours(t.device_hours(r)),
                _hours(t.wall_hours(r)),
            ]
        )
    totals = {
        key: [getattr(t, key)(r) for t in plan.trials]
        for key in ("steps", "tokens", "device_hours", "wall_hours")
    }
    sums = {k: None if None in v else sum(v) for k, v in totals.items()}
    table.append(
        [
            "",
            "total",
            "",
            "",
            _count(sums["steps"]),
            "",
            _count(sums["tokens"]),
            _hours(sums["device_hours"]),
            _hours(sums["wall_hours"]),
        ]
    )
    body = _aligned(table, left=2)
    lines += ["", *body[:-1], "-" * len(body[0]), body[-1], ""]
    if sums["wall_hours"] is not None:
        lines += [
            "total wall-h: one trial at a time; W workers in parallel take about total / W",
            "hours count training steps only (not validation, set-up, the final evaluation),",
            "  at one tokens/s for every row (rows that compute more per token take longer)",
        ]
    if r is None:
        lines.append("hours need tokens/s per device: --tokens-per-s N, or --bench FILE from")
        lines += [f"  {command}" for command in plan.measure]
    sampled = sorted(_SIZE_KEYS & set(spec.search_space))
    if sampled:
        lines.append(f"the search samples {', '.join(sampled)}: figures at the row's values")
    return "\n".join(lines)
