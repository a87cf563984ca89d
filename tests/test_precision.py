"""precision: auto resolved from the machine, explicit values honoured, pinned per study,
and decoding that falls back to fp32 where bf16 is slow."""

from __future__ import annotations

import json

import optuna
import pytest

from lit_transformer import precision as prec
from lit_transformer.config import ConfigError, RunConfig


@pytest.fixture
def bf16(monkeypatch):
    """Set the CPU's bf16 verdict (the probe's answer) for this test: bf16("fast" | "slow")."""

    def set_verdict(value: str) -> None:
        monkeypatch.setenv(prec.BF16_ENV, value)
        prec.cpu_bf16.cache_clear()

    yield set_verdict
    prec.cpu_bf16.cache_clear()


@pytest.mark.parametrize(
    ("verdict", "expected"), [("slow", "32"), ("fast", "bf16-mixed")], ids=["slow", "fast"]
)
def test_auto_follows_the_probe_and_explicit_values_are_kept(bf16, verdict, expected):
    bf16(verdict)
    assert prec.resolve("auto", "cpu") == (expected, f"auto: {prec.BF16_ENV}={verdict}")
    for explicit in ("32", "bf16-mixed", "16-mixed", "bf16-true"):
        assert prec.resolve(explicit, "cpu") == (explicit, "explicit")


def test_a_probe_answer_injected_as_a_function_is_used(monkeypatch):
    monkeypatch.setattr(prec, "cpu_bf16", lambda: prec.Bf16Verdict(True, "injected"))
    assert prec.resolve("auto", "cpu") == ("bf16-mixed", "auto: injected")
    monkeypatch.setattr(prec, "cpu_bf16", lambda: prec.Bf16Verdict(False, "injected"))
    assert prec.resolve("auto", "cpu") == ("32", "auto: injected")


def test_the_timed_probe_agrees_with_the_cpu_flags(bf16):
    """On a CPU without bf16 instructions the timing alone must also call bf16 slow (it is
    ~100x slower there); with them, the verdict must match the numbers it measured."""
    bf16("probe")
    verdict = prec.cpu_bf16()
    flags = prec.cpu_flags()
    if flags is not None and not flags & {"avx512_bf16", "amx_bf16"}:
        assert not verdict.fast, verdict.reason
    assert verdict.fast == (verdict.bf16_gflops >= verdict.fp32_gflops)


def test_yaml_integers_and_bad_values(bf16):
    cfg = RunConfig.from_dict({"trainer": {"precision": 32}})  # --trainer.precision 32
    assert cfg.trainer.precision == "32"
    assert RunConfig.from_dict({}).trainer.precision == "auto"
    with pytest.raises(ConfigError, match="one of auto, 32, bf16-mixed, 16-mixed, bf16-true"):
        RunConfig.from_dict({"trainer": {"precision": "fp8"}})
    with pytest.raises(ConfigError, match="trainer.devices must be a positive integer"):
        RunConfig.from_dict({"trainer": {"devices": "two"}})
    bf16("sometimes")
    with pytest.raises(ConfigError, match="must be fast, slow or probe"):
        prec.resolve("auto", "cpu")


def test_a_study_keeps_the_first_workers_precision(tmp_path, bf16, capsys):
    """Worker 1 (fast bf16) pins bf16-mixed; worker 2 on a slow-bf16 CPU keeps it, warning once."""
    from lit_transformer.sweep.orchestrator import pin_precision
    from lit_transformer.sweep.spec import load_spec

    spec = load_spec("sweeps/table3-smoke.yaml")
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    bf16("fast")
    assert pin_precision(study, spec) == "bf16-mixed"
    assert study.user_attrs["precision"] == "bf16-mixed"
    assert "precision bf16-mixed" in capsys.readouterr().out
    bf16("slow")
    again = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert pin_precision(again, spec) == "bf16-mixed"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: bf16-mixed is slow on this machine")


def test_decoding_precision_under_auto(bf16):
    bf16("slow")
    assert prec.decode_precision("bf16-mixed", None) == "32"
    assert prec.decode_precision("bf16-mixed", "bf16-mixed") == "bf16-mixed"  # as asked
    bf16("fast")
    assert prec.decode_precision("bf16-mixed", None) == "bf16-mixed"
    assert prec.decode_precision("bf16-mixed", "auto") == "bf16-mixed"
    assert prec.decode_precision("32", None) == "32"
    with pytest.raises(ConfigError, match="decoding precision must be one of auto, 32"):
        prec.decode_precision("32", "16")


def test_a_bf16_checkpoint_decodes_in_fp32_where_bf16_is_slow(
    tmp_path, bf16, tiny_ablation, small_data_root, session_cache, monkeypatch, capsys
):
    """The same hypotheses as an explicit --precision 32. The checkpoint is trained in fp32 and
    then labelled bf16-mixed, so that no test's run time depends on bf16 being fast here."""
    import torch

    from lit_transformer.cli.main import main
    from lit_transformer.decoding.translate import load_translator

    monkeypatch.setenv("LIT_TRANSFORMER_CACHE", str(session_cache))
    bf16("slow")
    out = tmp_path / "run"
    argv = ["fit", "--ablation", str(tiny_ablation), "--row", "base", "--data.data_root"]
    argv += [str(small_data_root), "--out", str(out), "--trainer.max_steps", "10", "--no-test"]
    argv += ["--trainer.precision", "auto", "--trainer.progress_every_n_steps", "4"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    # Resolved once, recorded where the run's facts go; progress lines off a terminal.
    assert captured.err.count("precision: 32 (auto: LIT_TRANSFORMER_CPU_BF16=slow)") == 1
    assert "step 4/10  loss " in captured.err and "step 8/10  loss " in captured.err
    result = json.loads((out / "result.json").read_text())
    assert result["precision"] == "32" and result["config"]["trainer"]["precision"] == "32"

    ckpt = torch.load(out / "model.ckpt", weights_only=False)
    ckpt["hyper_parameters"]["config"]["trainer"]["precision"] = "bf16-mixed"
    labelled = tmp_path / "bf16.ckpt"
    torch.save(ckpt, labelled)
    lines = ["A man is riding a bike.", "Two dogs play in the snow.", "A woman sings."]
    auto = load_translator(labelled)
    assert auto.precision == "32"
    assert auto.translate(lines) == load_translator(labelled, "32").translate(lines)
    bf16("fast")
    assert load_translator(labelled).precision == "bf16-mixed"


def test_a_study_from_before_pinning_keeps_what_its_trials_ran(tmp_path, bf16, capsys):
    from lit_transformer.sweep.orchestrator import pin_precision
    from lit_transformer.sweep.spec import load_spec

    study = optuna.create_study(study_name="old", storage=f"sqlite:///{tmp_path / 'o.db'}")
    trial = study.ask()
    trial.set_user_attr("precision", "bf16-mixed")
    study.tell(trial, 5.0)
    bf16("slow")  # auto would say 32 here
    assert pin_precision(study, load_spec("sweeps/table3-smoke.yaml")) == "bf16-mixed"
    assert study.user_attrs["precision"] == "bf16-mixed"


def test_an_explicit_precision_other_than_the_pin_is_one_clear_error(tmp_path, bf16):
    from lit_transformer.sweep.orchestrator import pin_precision
    from lit_transformer.sweep.spec import load_spec

    study = optuna.create_study(study_name="p", storage=f"sqlite:///{tmp_path / 'p.db'}")
    study.set_user_attr("precision", "bf16-mixed")
    spec = load_spec("sweeps/table3-cpu-steps.yaml")  # asks for 32 explicitly
    with pytest.raises(ConfigError, match="pinned to precision bf16-mixed, the spec asks for 32"):
        pin_precision(study, spec)
