"""Run configuration: one dataclass per concern (model, data, optim, trainer, decode).

A run's configuration is a nested mapping ``{model, data, optim, trainer, decode}``. It is
composed in layers, each on top of the last: the dataclass defaults; an ablation file's
``defaults`` and one row's changes (``fit --ablation FILE --row ROW``); any number of
``--config`` YAML files, in order; dotted options (``--model.dropout 0.2``). Every field
carries its own help (``option(default, help)``), from which ``fit --help`` lists every option
with its type and default; every value is checked here, so a bad input fails with one line.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lit_transformer.errors import ConfigError


def option(default: Any, help: str) -> Any:  # noqa: A002 - argparse's name for it
    """A config field with its default and the help ``fit --help`` shows for it."""
    return field(default=default, metadata={"help": help})


def help_of(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "")


@dataclass
class ModelConfig:
    """Table 3's knobs. Names follow the paper: N, d_model, d_ff, h, d_k, d_v, P_drop, eps_ls."""

    n_layers: int = option(6, "N: layers in the encoder and in the decoder")
    d_model: int = option(512, "d_model: width of embeddings and of every sub-layer's output")
    d_ff: int = option(2048, "d_ff: inner width of the position-wise feed-forward network")
    heads: int = option(8, "h: attention heads")
    d_k: int = option(64, "d_k: query/key width per head (queries and keys are h·d_k wide)")
    d_v: int = option(64, "d_v: value width per head (h·d_v, projected back to d_model)")
    dropout: float = option(0.1, "P_drop: residual, embedding and attention dropout")
    label_smoothing: float = option(0.1, "eps_ls: label smoothing of the training loss")
    positions: str = option("sinusoidal", "positional encoding: sinusoidal or learned")
    max_positions: int = option(1024, "table size of learned positions (and the sinusoid cache)")
    share_embeddings: bool = option(
        True, "one matrix for source and target embeddings and the pre-softmax projection"
    )
    vocab_size: int = option(0, "vocabulary size (0: the tokenizer's)")

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
    corpus: str = option("multi30k", "corpus under the data root (see its README)")
    data_root: str | None = option(
        None, "data root (default: $LIT_TRANSFORMER_DATA, else ../shared/data)"
    )
    src_lang: str = option("en", "source language")
    tgt_lang: str = option("de", "target language")
    vocab_size: int = option(8000, "joint SentencePiece BPE vocabulary size")
    max_tokens: int = option(4096, "token budget per batch and side (padded), per device")
    max_len: int | None = option(None, "drop training pairs longer than this (tokens)")
    num_workers: int = option(0, "DataLoader worker processes")
    cache_dir: str | None = option(None, "where tokenizers and encoded corpora are cached")
    max_eval_sentences: int | None = option(
        None, "evaluate on the first N dev/test pairs only (smoke runs)"
    )
    train: str | None = option(
        None,
        "training pairs from files instead of the corpus's: path prefixes of PREFIX.{src,tgt}"
        "[.gz] or .tsv[.gz] files, comma-separated",
    )
    dev: str | None = option(None, "dev pairs from files (as data.train)")
    test: str | None = option(None, "test pairs from files (as data.train)")
    tests: str | None = option(
        None, "more named test sets, NAME=PATH[,NAME=PATH...]; score one with test --split NAME"
    )
    clean_empty: bool = option(
        False, "drop training pairs with an empty side (else an empty line is an error)"
    )
    clean_max_words: int | None = option(
        None, "drop training pairs with a side longer than this many words (Moses: 250)"
    )
    clean_ratio: float | None = option(
        None, "drop training pairs whose word counts differ by more than this ratio (Moses: 1.5)"
    )
    tokenizer_sentences: int = option(
        2_000_000, "the tokenizer trains on at most this many lines, a seeded sample"
    )

    def validate(self) -> None:
        if self.vocab_size <= 0 or self.max_tokens <= 0:
            raise ConfigError("data.vocab_size and data.max_tokens must be positive")
        if self.clean_max_words is not None and self.clean_max_words < 1:
            raise ConfigError(f"data.clean_max_words must be >= 1, got {self.clean_max_words}")
        if self.clean_ratio is not None and self.clean_ratio < 1:
            raise ConfigError(f"data.clean_ratio must be >= 1, got {self.clean_ratio}")
        if self.tokenizer_sentences < 1:
            raise ConfigError("data.tokenizer_sentences must be positive")


@dataclass
class OptimConfig:
    """Adam(β1, β2, ε) with lrate = lr_scale · d_model^-0.5 · min(step^-0.5, step·warmup^-1.5)."""

    lr_scale: float = option(1.0, "multiplies the paper's learning-rate schedule")
    warmup_steps: int = option(4000, "warm-up steps of the schedule")
    betas: tuple[float, float] = option((0.9, 0.98), "Adam's β1, β2")
    eps: float = option(1e-9, "Adam's ε")
    weight_decay: float = option(0.0, "Adam's L2 weight decay")
    clip_grad_norm: float | None = option(None, "clip the gradient norm to this (off: null)")

    def validate(self) -> None:
        if self.lr_scale <= 0:
            raise ConfigError(f"optim.lr_scale must be positive, got {self.lr_scale!r}")
        if self.warmup_steps <= 0:
            raise ConfigError(f"optim.warmup_steps must be positive, got {self.warmup_steps!r}")


@dataclass
class TrainerConfig:
    max_steps: int = option(-1, "optimizer steps to train (-1: no step limit)")
    max_minutes: float | None = option(None, "minutes to train (see budget_counts_validation)")
    budget_counts_validation: bool = option(
        True,
        "max_minutes counts periodic validation (Lightning's max_time: wall time); false: "
        "training time only, so equal rows get the same steps whatever validation costs",
    )
    max_epochs: int | None = option(None, "epochs to train (null: no epoch limit)")
    accumulate_grad_batches: int = option(1, "batches per optimizer step")
    precision: str = option(
        "auto",
        "auto: bf16-mixed where bf16 matmuls are fast (a bf16 GPU, a CPU with AVX512_BF16/"
        "AMX), else 32; or 32, bf16-mixed, 16-mixed, bf16-true as given",
    )
    devices: int = option(1, "devices (processes) per node; DDP when devices × num_nodes > 1")
    num_nodes: int = option(
        1, "nodes (hosts) of one DDP run, launched by torchrun, srun or NODE_RANK (README)"
    )
    accelerator: str = option("auto", "Lightning accelerator: auto, cpu, gpu")
    strategy: str = option("auto", "Lightning strategy (auto: ddp over more than one process)")
    val_check_interval: int | float | None = option(
        None, "validate every this many steps (an integer > 1) or fraction of an epoch"
    )
    check_val_every_n_epoch: int | None = option(1, "validate every this many epochs")
    val_bleu: bool = option(True, "decode the dev set at validation (with val_beam) for BLEU")
    val_beam: int = option(1, "beam of validation during training (1: greedy)")
    log_every_n_steps: int = option(50, "logging interval (steps)")
    progress_every_s: float = option(
        60.0, "off a terminal (a log file, CI, a sweep worker): a progress line this often (s)"
    )
    progress_every_n_steps: int | None = option(
        None, "off a terminal: also a progress line every this many steps (0/null: off)"
    )
    checkpoint_every_n_steps: int | None = option(
        None, "periodic checkpoints, for averaging and resuming"
    )
    checkpoint_every_minutes: float | None = option(
        None,
        "periodic checkpoints every this many minutes of wall time in fit (the paper's 10), "
        "instead of checkpoint_every_n_steps",
    )
    keep_checkpoints: int = option(5, "periodic checkpoints kept (the paper averages 5 or 20)")
    average_last: int = option(0, "at the end of fit, average this many checkpoints (0: off)")
    wandb: str = option("offline", "W&B mode: online, offline or disabled")
    wandb_project: str = option("lit_transformer", "W&B project")
    wandb_group: str | None = option(None, "W&B group (a sweep sets its study name)")
    deterministic: bool = option(False, "Lightning's deterministic algorithms")
    compile: bool = option(
        False,
        "torch.compile the forward for training and teacher-forced evaluation (decoding stays "
        "eager: its shapes change every step); for GPUs, see BENCHMARKS.md",
    )
    inject_nan_at_step: int | None = option(
        None, "fault injection for tests of failure handling: the loss becomes NaN here"
    )

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
        for name in ("devices", "num_nodes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"trainer.{name} must be a positive integer, got {value!r}")
        if self.accumulate_grad_batches <= 0:
            raise ConfigError("trainer.accumulate_grad_batches must be positive")
        minutes = self.checkpoint_every_minutes
        if minutes is not None:
            if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes <= 0:
                raise ConfigError(
                    f"trainer.checkpoint_every_minutes must be a positive number, got {minutes!r}"
                )
            if self.checkpoint_every_n_steps:  # Lightning's ModelCheckpoint takes one trigger
                raise ConfigError(
                    "trainer.checkpoint_every_minutes and trainer.checkpoint_every_n_steps "
                    "exclude each other: set one, the other null"
                )
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
class DecodeConfig:
    """The paper's decoder (§6.1): beam search with beam size 4, length penalty α = 0.6 and a
    maximum output length of input length + 50. The one source of these defaults: the final
    evaluation of ``fit``, ``validate``, ``test``, ``translate``, ``bench decode`` and sweeps."""

    beam: int = option(4, "beam size of the final evaluation")
    alpha: float = option(0.6, "length penalty α: score = log P / ((5 + |Y|) / 6)^α")
    max_len_b: int = option(50, "maximum output length: source length + this")
    paper_bleu: bool = option(
        False,
        "also score paper-style BLEU (Moses-tokenised, compounds split, multi-bleu: t2t's "
        "get_ende_bleu.sh) in the final evaluation, beside sacreBLEU",
    )

    def validate(self) -> None:
        if not isinstance(self.paper_bleu, bool):
            raise ConfigError(f"decode.paper_bleu must be true or false, got {self.paper_bleu!r}")
        for name in ("beam", "max_len_b"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"decode.{name} must be a positive integer, got {value!r}")
        if float(self.alpha) < 0:
            raise ConfigError(f"decode.alpha must be >= 0, got {self.alpha!r}")


DECODE = DecodeConfig()  # the defaults, for code that takes beam/alpha as arguments


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def validate(self) -> RunConfig:
        for section in self.sections().values():
            section.validate()
        return self

    def sections(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        raw = self.to_dict()
        raw["optim"]["betas"] = list(raw["optim"]["betas"])
        return yaml.safe_dump(raw, sort_keys=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> RunConfig:
        raw = raw or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"a run configuration must be a mapping of {', '.join(SECTIONS)}")
        unknown = set(raw) - set(SECTIONS)
        if unknown:
            raise ConfigError(
                f"unknown config section(s) {sorted(unknown)}; expected {', '.join(SECTIONS)}"
            )
        sections = {}
        for f in dataclasses.fields(cls):
            sections[f.name] = _build(f.default_factory, raw.get(f.name) or {}, f.name)
        return cls(**sections).validate()


SECTIONS = tuple(f.name for f in dataclasses.fields(RunConfig))


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


def load_config_files(paths: list[str] | None) -> dict[str, Any]:
    """Several ``--config`` files, each merged on top of the ones before it."""
    merged: dict[str, Any] = {}
    for path in paths or []:
        loaded = load_yaml(path)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of {'/'.join(SECTIONS)}")
        merged = deep_merge(merged, loaded or {})
    return merged
