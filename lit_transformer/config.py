"""Run configuration: one dataclass per concern (model, data, optim, trainer).

A run's configuration is a nested mapping ``{model, data, optim, trainer}``. It is read from
YAML (``fit --config``), from an ablation file's defaults plus one row's overrides
(``fit --ablation FILE --row ROW``) and patched with dotted overrides (``--model.dropout 0.2``).
Every value is validated here so that a bad input fails with one clear line.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration problem, reported to the user as one line."""


@dataclass
class ModelConfig:
    """Table 3's knobs. Names follow the paper: N, d_model, d_ff, h, d_k, d_v, P_drop, eps_ls."""

    n_layers: int = 6  # N, for encoder and decoder alike
    d_model: int = 512
    d_ff: int = 2048
    heads: int = 8  # h
    d_k: int = 64  # queries and keys are h·d_k wide
    d_v: int = 64  # values are h·d_v wide, projected back to d_model
    dropout: float = 0.1  # P_drop
    label_smoothing: float = 0.1  # eps_ls
    positions: str = "sinusoidal"  # or "learned"
    max_positions: int = 1024  # table size for learned positions (and sinusoid cache)
    share_embeddings: bool = True  # one matrix: source emb, target emb, pre-softmax projection
    vocab_size: int = 0  # 0 = taken from the tokenizer

    def validate(self) -> None:
        for name in ("n_layers", "d_model", "d_ff", "heads", "d_k", "d_v", "max_positions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= float(self.label_smoothing) < 1.0:
            raise ConfigError(
                f"model.label_smoothing must be in [0, 1), got {self.label_smoothing!r}"
            )
        if self.positions not in ("sinusoidal", "learned"):
            raise ConfigError(
                f"model.positions must be 'sinusoidal' or 'learned', got {self.positions!r}"
            )
        if self.positions == "sinusoidal" and self.d_model % 2:
            raise ConfigError(f"sinusoidal positions need an even d_model, got {self.d_model}")
        if not isinstance(self.vocab_size, int) or self.vocab_size < 0:
            raise ConfigError(f"model.vocab_size must be >= 0, got {self.vocab_size!r}")


@dataclass
class DataConfig:
    corpus: str = "multi30k"
    data_root: str | None = None  # else $LIT_TRANSFORMER_DATA, else ../shared/data
    src_lang: str = "en"
    tgt_lang: str = "de"
    vocab_size: int = 8000  # joint BPE vocabulary
    max_tokens: int = 4096  # token budget per batch and side (padded), per device
    max_len: int | None = None  # drop longer training pairs
    num_workers: int = 0
    cache_dir: str | None = None
    max_eval_sentences: int | None = None  # evaluate on the first N dev/test pairs (smoke runs)

    def validate(self) -> None:
        if self.vocab_size <= 0 or self.max_tokens <= 0:
            raise ConfigError("data.vocab_size and data.max_tokens must be positive")


@dataclass
class OptimConfig:
    """Adam(β1, β2, ε) with lrate = lr_scale · d_model^-0.5 · min(step^-0.5, step·warmup^-1.5)."""

    lr_scale: float = 1.0
    warmup_steps: int = 4000
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 0.0
    clip_grad_norm: float | None = None

    def validate(self) -> None:
        if self.lr_scale <= 0:
            raise ConfigError(f"optim.lr_scale must be positive, got {self.lr_scale!r}")
        if self.warmup_steps <= 0:
            raise ConfigError(f"optim.warmup_steps must be positive, got {self.warmup_steps!r}")


@dataclass
class TrainerConfig:
    max_steps: int = -1
    max_minutes: float | None = None
    # Whether validation inside fit uses the max_minutes budget (Lightning's max_time: wall
    # time) or comes on top of it (false: training time only, same steps for equal rows).
    budget_counts_validation: bool = True
    max_epochs: int | None = None
    accumulate_grad_batches: int = 1
    # auto: bf16-mixed where bf16 matmuls are fast (a bf16 GPU, a CPU with AVX512_BF16/AMX),
    # else 32 (lit_transformer/precision.py); or 32, bf16-mixed, 16-mixed, bf16-true as given.
    precision: str = "auto"
    devices: int = 1
    accelerator: str = "auto"
    strategy: str = "auto"
    val_check_interval: int | float | None = None  # steps between validations
    check_val_every_n_epoch: int | None = 1
    val_bleu: bool = True  # decode the dev set at validation (greedy) for BLEU
    val_beam: int = 1
    log_every_n_steps: int = 50
    # Off a terminal (a log file, nohup, CI, a sweep worker) there is no progress bar: one
    # line every this many seconds or steps instead (0 / null = off).
    progress_every_s: float = 60.0
    progress_every_n_steps: int | None = None
    checkpoint_every_n_steps: int | None = None  # periodic checkpoints, for averaging
    keep_checkpoints: int = 5  # the paper averages the last 5 (base) or 20 (big)
    average_last: int = 0  # at the end of fit, average this many checkpoints (0 = off)
    wandb: str = "offline"  # online | offline | disabled
    wandb_project: str = "lit_transformer"
    wandb_group: str | None = None
    deterministic: bool = False
    # torch.compile the model's forward for training and teacher-forced evaluation (decoding
    # stays eager: its shapes change every step). For GPUs; measured slower on this CPU.
    compile: bool = False
    # Fault injection for tests of the sweep's failure handling: the loss becomes NaN here.
    inject_nan_at_step: int | None = None

    def validate(self) -> None:
        from lit_transformer.precision import normalize

        self.precision = normalize(self.precision, what="trainer.precision")
        if not isinstance(self.progress_every_s, int | float) or self.progress_every_s < 0:
            raise ConfigError(
                f"trainer.progress_every_s must be a number >= 0, got {self.progress_every_s!r}"
            )
        n = self.progress_every_n_steps
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise ConfigError(f"trainer.progress_every_n_steps must be an integer >= 0, got {n!r}")
        if not isinstance(self.devices, int) or isinstance(self.devices, bool) or self.devices < 1:
            raise ConfigError(f"trainer.devices must be a positive integer, got {self.devices!r}")
        if self.accumulate_grad_batches <= 0:
            raise ConfigError("trainer.accumulate_grad_batches must be positive")
        if not isinstance(self.budget_counts_validation, bool):
            raise ConfigError(
                "trainer.budget_counts_validation must be true or false, "
                f"got {self.budget_counts_validation!r}"
            )
        if self.wandb not in ("online", "offline", "disabled"):
            raise ConfigError(
                f"trainer.wandb must be online, offline or disabled, got {self.wandb!r}"
            )


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def validate(self) -> RunConfig:
        for section in (self.model, self.data, self.optim, self.trainer):
            section.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> RunConfig:
        raw = raw or {}
        if not isinstance(raw, dict):
            raise ConfigError("a run configuration must be a mapping of model/data/optim/trainer")
        unknown = set(raw) - {"model", "data", "optim", "trainer"}
        if unknown:
            raise ConfigError(
                f"unknown config section(s) {sorted(unknown)}; expected model, data, optim, trainer"
            )
        sections = {}
        for f in dataclasses.fields(cls):
            sections[f.name] = _build(f.default_factory, raw.get(f.name) or {}, f.name)
        return cls(**sections).validate()


def _build(factory: Any, values: dict[str, Any], section: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"config section '{section}' must be a mapping")
    obj = factory()
    names = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(
                f"unknown option '{section}.{key}' (known: {', '.join(sorted(names))})"
            )
        default = getattr(obj, key)
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif (
            isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float)
        ):
            if value.is_integer():
                value = int(value)
        setattr(obj, key, value)
    return obj


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """Turn Lightning-style ``--model.d_model 256`` / ``--trainer.precision=bf16-mixed`` into a
    nested mapping; values are parsed as YAML scalars (so ``0.1`` is a float, ``null`` None)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or "." not in arg.split("=", 1)[0]:
            raise ConfigError(
                f"unrecognised argument {arg!r} (overrides look like --model.dropout 0.2)"
            )
        if "=" in arg:
            key, text = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"override {arg} needs a value")
            key, text = arg[2:], args[i + 1]
            i += 2
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}{where}: malformed YAML ({problem})") from None
