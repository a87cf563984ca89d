"""Raw text in, raw text out: tokenise, batch by length, beam search, detokenise.

Decoding precision is ``auto`` unless one is given: a ``bf16-mixed`` model decodes under bf16
autocast (matmuls in bf16, softmax and scores in fp32) where bf16 is fast on this machine, as the
validation inside its trial did, and in fp32 where bf16 is slow (``precision.decode_precision``);
an fp32 model decodes in fp32.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from lit_transformer.config import DECODE
from lit_transformer.decoding.beam import DECODE_BATCH_TOKENS, beam_search
from lit_transformer.training.average import CheckpointError


def tokenizer_from_proto(proto: bytes):
    """Materialise a SentencePiece model stored in a checkpoint (cached by its hash)."""
    from lit_transformer.data.corpora import cache_root
    from lit_transformer.data.tokenizer import Tokenizer

    path = cache_root() / "spm-from-ckpt" / f"{hashlib.sha256(proto).hexdigest()}.model"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(proto)
        os.replace(tmp, path)
    return Tokenizer(path)


def load_module(ckpt: str | Path):
    """The LitTransformer in a checkpoint (final, last or averaged) with its tokenizer."""
    from lit_transformer.training.module import LitTransformer

    path = Path(ckpt)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
        hp = data["hyper_parameters"]
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: not a lit_transformer checkpoint ({exc})") from None
    module = LitTransformer(**hp)
    module.load_state_dict(data["state_dict"])
    module.eval()
    proto = data.get("tokenizer_proto")
    if proto is None:
        raise CheckpointError(f"{path}: checkpoint carries no tokenizer")
    module.tokenizer_proto = proto
    module.tokenizer = tokenizer_from_proto(proto)
    return module


def decode_precision(module, precision: str | None) -> str:
    """``precision``, or under ``auto`` (None) the checkpoint's training precision where it is
    fast on the module's device (``precision.decode_precision``)."""
    from lit_transformer.precision import decode_precision as choose

    device = next(module.parameters()).device.type
    return choose(module.cfg.trainer.precision, precision, device)


class Translator:
    def __init__(
        self, module, max_tokens: int = DECODE_BATCH_TOKENS, precision: str | None = None
    ) -> None:
        self.module = module
        self.tokenizer = module.tokenizer
        self.max_tokens = max_tokens
        self.precision = decode_precision(module, precision)

    def _batches(self, ids: list[list[int]]) -> Iterator[list[int]]:
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        batch: list[int] = []
        longest = 0
        for i in order:
            longest_new = max(longest, len(ids[i]) + 1)
            if batch and longest_new * (len(batch) + 1) > self.max_tokens:
                yield batch
                batch, longest_new = [], len(ids[i]) + 1
            batch.append(i)
            longest = longest_new
        if batch:
            yield batch

    @torch.no_grad()
    def translate(
        self,
        lines: Sequence[str],
        beam: int = DECODE.beam,
        alpha: float = DECODE.alpha,
        use_cache: bool = True,
    ) -> list[str]:
        m = self.module
        ids = self.tokenizer.encode([line.strip() for line in lines])
        out = [""] * len(lines)
        device = next(m.parameters()).device
        bf16 = self.precision == "bf16-mixed"
        for batch in self._batches(ids):
            real = [i for i in batch if ids[i]]
            if not real:
                continue
            width = max(len(ids[i]) for i in real) + 1
            src = torch.full((len(real), width), m.pad_id, dtype=torch.long)
            for row, i in enumerate(real):
                seq = ids[i] + [m.eos_id]
                src[row, : len(seq)] = torch.tensor(seq)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                hyps = beam_search(
                    m.model,
                    src.to(device),
                    m.bos_id,
                    m.eos_id,
                    beam=beam,
                    alpha=alpha,
                    use_cache=use_cache,
                )
            for i, text in zip(real, self.tokenizer.decode([h.tokens for h in hyps]), strict=True):
                out[i] = text
        return out


def load_translator(ckpt: str | Path, precision: str | None = None) -> Translator:
    return Translator(load_module(ckpt), precision=precision)
