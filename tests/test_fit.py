"""End to end: the trial contract (`fit … --out DIR` → result.json), W&B offline, checkpoint
averaging, evaluation and translation from a checkpoint (DDP: tests/test_cluster.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from lit_transformer.cli.main import main
from lit_transformer.training.loggers import resolve_wandb_mode

RESULT_KEYS = {"dev_ppl", "dev_bleu", "params", "steps", "wall_s", "seed", "row", "checkpoint"}


def fit_args(ablation: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--ablation",
        str(ablation),
        "--row",
        "base",
        "--seed",
        "3",
        "--data.data_root",
        str(data),
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_ablation, small_data_root, session_cache):
    out = tmp_path_factory.mktemp("fit") / "run"
    os.environ["LIT_TRANSFORMER_CACHE"] = str(session_cache)
    code = main(
        fit_args(
            tiny_ablation,
            small_data_root,
            out,
            "--trainer.max_steps",
            "20",
            "--trainer.wandb",
            "offline",
            "--trainer.average_last",
            "3",
            "--decode.paper_bleu",
            "true",
        )
    )
    assert code == 0
    return out


def test_fit_writes_the_trial_contract(trained):
    result = json.loads((trained / "result.json").read_text())
    assert RESULT_KEYS <= set(result)
    assert result["row"] == "base" and result["seed"] == 3 and result["steps"] == 20
    assert result["dev_ppl"] > 1 and 0 <= result["dev_bleu"] <= 100
    assert result["test_bleu"] is not None
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed")
    # decode.paper_bleu: paper-style BLEU beside sacreBLEU, with a signature of its own.
    for key in ("dev_bleu_paper", "test_bleu_paper", "test_bleu_averaged_paper"):
        assert 0 <= result[key] <= 100, key
    assert result["bleu_paper_signature"].startswith("paper-style: moses-tok(de, sacremoses")
    assert Path(result["checkpoint"]).is_file()
    assert len(Path(result["dev_hypotheses"]).read_text().splitlines()) == 40  # every dev line
    assert len(result["git_commit"]) >= 7 and len(result["data_hash"]) == 64
    assert len(result["tokenizer_hash"]) == 64
    timings = result["timings_s"]  # set-up + training + final evaluation = the whole run
    assert set(timings) == {"setup", "fit", "final"} and timings["fit"] > 0
    assert sum(timings.values()) == pytest.approx(result["wall_s"], abs=0.5)
    # Periodic checkpoints for averaging (every 5 steps, the last 3 kept) and their average.
    ckpts = sorted(p.name for p in (trained / "checkpoints").glob("step*.ckpt"))
    assert ckpts == ["step0000010.ckpt", "step0000015.ckpt", "step0000020.ckpt"]
    assert result["averaged_checkpoints"] == 3
    assert Path(result["averaged_checkpoint"]).is_file()
    # The dev curve, by optimizer step (validation every 10 of the 20 steps), as the study keeps it.
    curve = result["dev_curve"]
    assert [p[0] for p in curve] == [10, 20] and all(p[1] > 1 and p[2] >= 0 for p in curve)


def test_metrics_logged_to_csv_and_wandb_offline(trained):
    import pandas as pd

    metrics = pd.read_csv(trained / "csv" / "metrics.csv")
    for col in (
        "train/loss",
        "train/lr",
        "train/tgt_tokens_per_s",
        "train/padding_fraction",
        "val/loss",
        "val/ppl",
        "val/bleu",
    ):
        assert col in metrics.columns and metrics[col].notna().any(), col
    # The LR logged at each step follows the schedule (stepped per optimizer step).
    from lit_transformer.training.schedule import noam_lr

    lr = metrics.dropna(subset=["train/lr"]).iloc[0]
    assert lr["train/lr"] == pytest.approx(noam_lr(int(lr["step"]) + 1, 32, 20, 2.0), rel=1e-5)
    runs = list((trained / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0


def test_the_offline_wandb_run_reads_back_flat_and_final(trained):
    """The run's transaction log (what `wandb sync` uploads): flat keys to group by, one
    section per concern, the row's group as a tag, and a summary of best and final values
    equal to result.json (not the last values logged)."""
    import pandas as pd

    from lit_transformer.training.wandb_file import read_run

    (path,) = (trained / "wandb").glob("offline-run-*/run-*.wandb")
    run = read_run(path)
    result = json.loads((trained / "result.json").read_text())
    assert run.run_id == (trained / "wandb" / "run_id").read_text().strip()
    assert run.tags == ["base"] and run.job_type == "train" and run.exit_code == 0
    for key in ("row", "seed", "precision", "params", "git_commit", "data_hash", "group"):
        assert run.config[key] == result[key] if key in result else run.config[key], key
    assert run.config["group"] == "base" and run.config["params"] == result["params"]
    assert run.config["model"] == result["config"]["model"]  # shown as model.heads, …
    assert "config" not in run.config and "pad_id" not in run.config
    for key in ("dev_ppl", "dev_bleu", "test_bleu", "steps"):
        assert run.summary[f"final/{key}"] == pytest.approx(result[key]), key
    metrics = pd.read_csv(trained / "csv" / "metrics.csv")
    assert run.summary["val/ppl"] == {"min": pytest.approx(metrics["val/ppl"].min())}
    assert run.summary["val/bleu"] == {"max": pytest.approx(metrics["val/bleu"].max())}


def test_final_evaluation_keeps_the_dev_loss_of_a_validation_at_the_last_step(
    trained, small_data_root
):
    """Training ended with a validation at step 20 (every 10 steps): the final beam-4
    evaluation reports that dev loss and decodes, without a second teacher-forced pass."""
    import pandas as pd

    result = json.loads((trained / "result.json").read_text())
    metrics = pd.read_csv(trained / "csv" / "metrics.csv")
    losses = metrics.dropna(subset=["val/loss"])
    assert len(losses) == 2  # steps 10 and 20; the final evaluation logged none
    assert result["dev_loss"] == pytest.approx(losses["val/loss"].iloc[-1])
    assert result["dev_ppl"] == pytest.approx(losses["val/ppl"].iloc[-1])
    bleu = metrics.dropna(subset=["val/bleu"])["val/bleu"]
    assert len(bleu) == 3 and result["dev_bleu"] == pytest.approx(bleu.iloc[-1])
    # The numbers from inside the trial are those of the saved weights scored afresh.
    from lit_transformer.decoding.score import evaluate_checkpoint

    ckpt, root = trained / "model.ckpt", str(small_data_root)
    fresh = evaluate_checkpoint(ckpt, stage="validate", data_root=root)
    assert fresh["ppl"] == pytest.approx(result["dev_ppl"], rel=1e-5)
    assert fresh["bleu"] == pytest.approx(result["dev_bleu"], abs=1e-9)


def test_evaluation_decodes_batches_together_with_the_same_result(
    trained, small_data_root, monkeypatch
):
    """Evaluation batches wait to be decoded together (DECODE_BATCH_TOKENS): the hypotheses
    are those of decoding batch by batch (compared in fp64, where batch shape cannot change
    a result), and the last ones, decoded after the last step, still run under autocast."""
    import lit_transformer.training.module as lit_module
    from lit_transformer.decoding.score import checkpoint_datamodule, scoring_trainer
    from lit_transformer.decoding.translate import load_module
    from lit_transformer.training.module import EvalPlan

    def validate(precision: str, tokens: int) -> tuple[dict, list]:
        module = load_module(trained / "model.ckpt")
        module.plan = EvalPlan(4, module.cfg.decode.alpha)
        dm = checkpoint_datamodule(module, "validate", str(small_data_root))
        calls = []

        def spy(model, src, *args, **kwargs):
            calls.append((src.size(0), torch.is_autocast_enabled("cpu")))
            return beam_search(model, src, *args, **kwargs)

        monkeypatch.setattr(lit_module, "DECODE_BATCH_TOKENS", tokens)
        monkeypatch.setattr(lit_module, "beam_search", spy)
        scoring_trainer(precision).validate(module, datamodule=dm, verbose=False)
        return module.results["val"].hypotheses, calls

    beam_search = lit_module.beam_search
    one_by_one, calls = validate("64-true", 1)
    assert len(calls) >= 2 and sum(n for n, _ in calls) == 40
    together, calls = validate("64-true", 10**9)
    assert [n for n, _ in calls] == [40]
    assert together == one_by_one
    _, calls = validate("bf16-mixed", 10**9)
    assert calls == [(40, True)]


def test_wandb_without_key_falls_back_to_offline_once(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.warns(UserWarning, match="no API key") as record:
        assert resolve_wandb_mode("online") == "offline"
    assert len(record) == 1
    assert resolve_wandb_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode("online") == "disabled"


def test_a_finished_wandb_run_is_whole_on_disk_at_once(tmp_path):
    """wandb.finish() returns before W&B's core writes the transaction log out (read at once,
    it held no record in 2 of 6 tries here); finish_wandb waits until it is whole."""
    import wandb

    from lit_transformer.training.loggers import finish_wandb
    from lit_transformer.training.wandb_file import read_run

    for i in range(6):
        run = wandb.init(dir=tmp_path / str(i), project="p", mode="offline", config={"i": i})
        for step in range(20):
            run.log({"loss": 1.0 / (step + 1)})
        path, run_id = Path(run.settings.sync_file), run.id
        finish_wandb([], {})
        back = read_run(path)
        assert (back.run_id, back.exit_code, back.history_rows) == (run_id, 0, 20), i
    disabled = wandb.init(dir=tmp_path / "off", project="p", mode="disabled")
    finish_wandb([], {})  # nothing written, nothing waited for
    assert not Path(disabled.settings.sync_file).exists()


def test_translate_from_checkpoint(trained, tmp_path, capsys):
    src = tmp_path / "in.en"
    src.write_text("A man is riding a bike.\n\nTwo dogs play in the snow.\n")
    assert main(["translate", "--ckpt", str(trained / "model.ckpt"), "--input", str(src)]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert len(lines) == 4 and lines[1] == ""  # 3 lines in, 3 out (the empty one stays empty)


def test_average_command(trained, tmp_path, capsys):
    out = tmp_path / "avg.ckpt"
    assert main(["average", str(trained / "checkpoints"), "--last", "2", "--out", str(out)]) == 0
    avg = torch.load(out, map_location="cpu", weights_only=False)
    a = torch.load(trained / "checkpoints" / "step0000015.ckpt", weights_only=False)
    b = torch.load(trained / "checkpoints" / "step0000020.ckpt", weights_only=False)
    key = "model.encoder.0.feed_forward.w_1.weight"
    torch.testing.assert_close(
        avg["state_dict"][key], (a["state_dict"][key] + b["state_dict"][key]) / 2
    )


def test_test_command_scores_a_checkpoint(trained, small_data_root, capsys):
    code = main(
        [
            "test",
            "--ckpt",
            str(trained / "model.ckpt"),
            "--data-root",
            str(small_data_root),
            "--beam",
            "2",
        ]
    )
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["sentences"] == 40 and metrics["bleu"] is not None and metrics["ppl"] > 1


def test_bleu_paper_adds_paper_style_bleu_beside_sacrebleu(trained, small_data_root, capsys):
    """``--bleu paper`` adds the score the run recorded for the same weights (decode.paper_bleu,
    beam 4), tokenised for the checkpoint's target language; the sacreBLEU keys stay."""
    result = json.loads((trained / "result.json").read_text())
    lang = result["config"]["data"]["tgt_lang"]
    for stage, key in (("validate", "dev_bleu_paper"), ("test", "test_bleu_paper")):
        argv = [stage, "--ckpt", str(trained / "model.ckpt"), "--data-root", str(small_data_root)]
        assert main([*argv, "--bleu", "paper"]) == 0
        paper = json.loads(capsys.readouterr().out)
        assert paper["bleu_paper"] == pytest.approx(result[key], abs=1e-9), stage
        assert paper["bleu_paper_signature"] == result["bleu_paper_signature"]
        assert f"moses-tok({lang}, " in paper["bleu_paper_signature"]
    assert paper["signature"] == result["bleu_signature"]  # sacreBLEU's, as without the flag
    assert main(argv) == 0  # the default: sacreBLEU alone, the same keys and numbers as before
    plain = json.loads(capsys.readouterr().out)
    assert plain == {k: v for k, v in paper.items() if not k.startswith("bleu_paper")}
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--bleu", "tokenized"])
    assert exc.value.code == 2


def test_evaluation_precision_defaults_to_the_training_precision(
    trained, small_data_root, tmp_path, capsys
):
    """The tiny model trained in fp32, so scoring it decodes in fp32 unless asked; bf16
    autocast is the same beam search with bf16 matmuls (its scores are close, not equal)."""
    from lit_transformer.decoding.translate import load_translator

    ckpt = str(trained / "model.ckpt")
    argv = ["test", "--ckpt", ckpt, "--data-root", str(small_data_root), "--beam", "2"]
    scores = {}
    for extra in ([], ["--precision", "32"], ["--precision", "bf16-mixed"]):
        assert main([*argv, *extra]) == 0
        metrics = json.loads(capsys.readouterr().out)
        scores[metrics["precision"] + ("" if extra else " default")] = metrics
    assert {k: v["bleu"] for k, v in scores.items() if k.startswith("32")} == {
        "32 default": scores["32"]["bleu"],
        "32": scores["32"]["bleu"],
    }
    assert scores["bf16-mixed"]["ppl"] == pytest.approx(scores["32"]["ppl"], rel=0.05)
    assert scores["bf16-mixed"]["ppl"] != scores["32"]["ppl"]  # it did run in bf16
    assert load_translator(ckpt).precision == "32"
    bf16 = load_translator(ckpt, "bf16-mixed")
    assert len(bf16.translate(["A man is riding a bike.", "Two dogs play."])) == 2
    src = tmp_path / "in.en"
    src.write_text("A dog.\n")
    with pytest.raises(SystemExit) as exc:  # argparse: one usage line, exit 2
        main(["translate", "--ckpt", ckpt, "--input", str(src), "--precision", "16"])
    assert exc.value.code == 2


def test_evaluation_encodes_with_the_checkpoints_tokenizer(
    trained, small_data_root, tmp_path, capsys
):
    """Scores depend on the checkpoint and the eval text only: a data root whose training text
    differs (a retrained tokenizer would differ) or is absent gives the same numbers."""
    import gzip
    import shutil

    def score(root: Path) -> dict:
        argv = ["test", "--ckpt", str(trained / "model.ckpt"), "--data-root", str(root)]
        assert main([*argv, "--beam", "1"]) == 0
        return json.loads(capsys.readouterr().out)

    reference = score(small_data_root)
    other = tmp_path / "other" / "multi30k"
    other.mkdir(parents=True)
    for name in ("val", "test_2016_flickr"):
        for lang in ("en", "de"):
            shutil.copy(small_data_root / "multi30k" / f"{name}.{lang}.gz", other)
    assert score(other.parent) == reference  # no training text at all
    for lang in ("en", "de"):  # a different training text: the last 300 pairs only
        with gzip.open(small_data_root / "multi30k" / f"train.{lang}.gz", "rt") as fh:
            lines = fh.readlines()[300:]
        with gzip.open(other / f"train.{lang}.gz", "wt") as fh:
            fh.writelines(lines)
    assert score(other.parent) == reference


@pytest.mark.slow
def test_compiled_training_matches_eager_and_keeps_checkpoint_names(
    tiny_ablation, small_data_root, session_cache, tmp_path
):
    """--trainer.compile true: the same losses as eager (same seed) and a checkpoint that
    loads into an uncompiled model for decoding."""
    import pandas as pd

    from lit_transformer.decoding.translate import load_module

    os.environ["LIT_TRANSFORMER_CACHE"] = str(session_cache)
    losses = {}
    for name, flag in (("eager", "false"), ("compiled", "true")):
        out = tmp_path / name
        extra = ("--trainer.max_steps", "6", "--trainer.compile", flag)
        # Compiled code draws other dropout masks.
        extra += ("--trainer.log_every_n_steps", "1", "--model.dropout", "0.0")
        assert main(fit_args(tiny_ablation, small_data_root, out, *extra, "--no-test")) == 0
        m = pd.read_csv(out / "csv" / "metrics.csv")
        losses[name] = m["train/loss"].dropna().tolist()
    assert len(losses["eager"]) >= 5
    assert losses["compiled"] == pytest.approx(losses["eager"], rel=1e-3, abs=1e-3)
    module = load_module(tmp_path / "compiled" / "model.ckpt")
    assert not hasattr(module.model, "_orig_mod")


def test_compare_lists_runs_from_their_directories(trained, tmp_path, capsys):
    result = json.loads((trained / "result.json").read_text())
    assert main(["compare", str(trained.parent), "--json"]) == 0  # a folder above the run
    (row,) = json.loads(capsys.readouterr().out)
    assert row["row"] == "base" and row["seed"] == 3 and row["dir"] == str(trained)
    assert row["dev_ppl"] == result["dev_ppl"] and row["steps"] == result["steps"]
    assert main(["compare", str(trained)]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["row", "seed", "params", "steps"]
    assert line.split()[:4] == ["base", "3", f"{result['params']:,}", str(result["steps"])]
    assert main(["compare", str(tmp_path)]) == 2  # no finished run there: one line
    assert capsys.readouterr().err.startswith("error: no result.json under")


def test_sync_without_a_key_or_a_network_loses_nothing(trained, tmp_path, capsys, monkeypatch):
    """No key: one line, nothing touched. A key but no network (a closed port): one line
    after the timeout, and the run is still there to upload later (never a hang)."""
    import shutil

    study = tmp_path / "runs" / "st"
    shutil.copytree(trained / "wandb", study / "base" / "seed3" / "wandb")
    argv = ["sync", "st", "--run-dir", str(tmp_path / "runs"), "--timeout", "20"]
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no W&B API key" in err and "1 offline runs" in err
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing is lost, 1 of 1 runs stay offline" in err
    assert list(study.rglob("run-*.wandb")) and not list(study.rglob("*.wandb.synced"))
