"""Benchmarks, one module per ``lit-transformer bench`` command: ``train`` (a training step
against plain PyTorch), ``decode`` (beam search with and without the KV cache), ``batching``
(real-token fraction), ``choices`` (each CPU kernel choice against its alternative) and
``gpu`` (the prepared GPU check). Speed goals live here and in BENCHMARKS.md, not in timed
tests."""
