"""Cleaning a training corpus as the reference recipes do.

Moses' ``clean-corpus-n.perl`` (used by fairseq's ``prepare-wmt14en2de.sh`` as
``-ratio 1.5 ... 1 250``) keeps a pair when, with ``n_s``/``n_t`` the whitespace-separated
tokens of its two sides,

    min_words <= n_s, n_t <= max_words   and   max(n_s, n_t) / min(n_s, n_t) <= ratio.

The rules here are those three, each optional, applied to training pairs only (never to a
dev or test set) and counted separately. A pair is charged to the first rule it fails, in the
order *empty* (a side with no words), *too long*, *ratio*, so the counts add up to the pairs
removed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lit_transformer.data.corpora import DataError

RULES = ("empty", "too_long", "ratio")


@dataclass(frozen=True)
class CleanRules:
    """Which training pairs to drop. All off keeps every pair and makes an empty side an error
    (as for dev and test sets), which is what the small corpora need."""

    drop_empty: bool = False
    max_words: int | None = None
    max_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.max_words is not None and self.max_words < 1:
            raise DataError(f"data.clean_max_words must be >= 1, got {self.max_words}")
        if self.max_ratio is not None and self.max_ratio < 1.0:
            raise DataError(f"data.clean_ratio must be >= 1, got {self.max_ratio}")

    @property
    def active(self) -> bool:
        return self.drop_empty or self.max_words is not None or self.max_ratio is not None

    def key(self) -> dict:
        """What the cached, cleaned training data depends on."""
        return asdict(self)

    def reason(self, src: str, tgt: str) -> str | None:
        """The first rule this pair fails, or None to keep it."""
        if not (src and tgt):
            return "empty" if self.drop_empty else None
        if self.max_words is None and self.max_ratio is None:
            return None
        n_s, n_t = len(src.split()), len(tgt.split())
        if self.max_words is not None and max(n_s, n_t) > self.max_words:
            return "too_long"
        if self.max_ratio is not None and max(n_s, n_t) > self.max_ratio * min(n_s, n_t):
            return "ratio"
        return None


@dataclass
class CleanCounts:
    """Pairs read, and removed per rule."""

    read: int = 0
    removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))

    @property
    def kept(self) -> int:
        return self.read - sum(self.removed.values())

    def to_dict(self) -> dict:
        return {"read": self.read, "kept": self.kept, "removed": dict(self.removed)}

    @classmethod
    def from_dict(cls, d: dict) -> CleanCounts:
        return cls(int(d["read"]), {k: int(d["removed"].get(k, 0)) for k in RULES})

    def summary(self, rules: CleanRules) -> str:
        """One line, e.g. ``train: 4508785 pairs, kept 4468840 (removed: empty 1201, longer
        than 250 words 2, length ratio > 1.5 39742)``."""
        if not rules.active:
            return f"train: {self.read} pairs (no cleaning)"
        names = {
            "empty": "empty",
            "too_long": f"longer than {rules.max_words} words",
            "ratio": f"length ratio > {rules.max_ratio}",
        }
        parts = [f"{names[r]} {self.removed[r]}" for r in RULES if self._on(rules, r)]
        return f"train: {self.read} pairs, kept {self.kept} (removed: {', '.join(parts)})"

    @staticmethod
    def _on(rules: CleanRules, rule: str) -> bool:
        return {
            "empty": rules.drop_empty,
            "too_long": rules.max_words is not None,
            "ratio": rules.max_ratio is not None,
        }[rule]
