"""The configuration describes itself: options generated from the dataclasses, with their
types, defaults and help; layers composed in order; bad values as one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lit_transformer.cli.main import main
from lit_transformer.cli.options import parse_overrides
from lit_transformer.config import DECODE, ConfigError, DecodeConfig, RunConfig

REPO = Path(__file__).resolve().parents[2]
CPU = REPO / "ablations" / "table3-cpu.yaml"


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: --help, or a usage error
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_fit_help_lists_every_option_with_type_default_and_help(capsys):
    code, out, _ = run_cli(["fit", "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    assert "--model.heads INT h: attention heads (default: 8)" in flat
    assert "--trainer.precision STR auto:" in flat
    assert "--trainer.max_minutes FLOAT|null" in flat
    assert "--decode.beam INT beam size of the final evaluation (default: 4)" in flat
    for section, cls in RunConfig().sections().items():
        for name in vars(cls):
            assert f"--{section}.{name} " in out, name


def test_print_config_shows_the_rows_merged_config(capsys):
    argv = ["fit", "--print-config", "--ablation", str(CPU), "--row", "A-h1"]
    code, out, _ = run_cli([*argv, "--model.dropout", "0.2"], capsys)
    assert code == 0
    cfg = yaml.safe_load(out)
    assert cfg["model"]["heads"] == 1 and cfg["model"]["d_k"] == 256  # the row's change
    assert cfg["model"]["dropout"] == 0.2  # the option on top
    assert cfg["decode"] == {"beam": 4, "alpha": 0.6, "max_len_b": 50, "paper_bleu": False}
    assert RunConfig.from_dict(cfg).model.heads == 1  # it reads back


def test_config_files_compose_in_order_under_the_options(tmp_path, capsys):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("model: {d_model: 64, d_k: 16, d_v: 16, dropout: 0.3}\ntrainer: {max_steps: 5}\n")
    b.write_text("model: {dropout: 0.2}\n")
    argv = ["fit", "--print-config", "--config", str(a), "--config", str(b)]
    code, out, _ = run_cli([*argv, "--trainer.max_steps", "7"], capsys)
    assert code == 0
    cfg = yaml.safe_load(out)
    assert cfg["model"]["d_model"] == 64 and cfg["model"]["dropout"] == 0.2
    assert cfg["trainer"]["max_steps"] == 7


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--trainer.devices", "two"], "fit: trainer.devices must be an integer, got 'two'"),
        (["--trainer.precision", "31"], "trainer.precision must be one of auto, 32"),
        (["--max-steps", "3"], "--max-steps is spelled --trainer.max_steps"),
        (["--model.head", "3"], "unknown option 'model.head' (known: n_layers"),
        (["--trainer.val_bleu", "maybe"], "trainer.val_bleu must be true or false, got 'maybe'"),
    ],
)
def test_bad_values_are_one_clear_line(extra, message, capsys, tmp_path):
    argv = ["fit", "--ablation", str(CPU), "--row", "base", "--out", str(tmp_path / "o")]
    code, out, err = run_cli([*argv, *extra], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_values_take_their_fields_type():
    o = parse_overrides(
        [
            "--trainer.precision",
            "32",
            "--trainer.max_minutes",
            "null",
            "--trainer.val_check_interval",
            "0.5",
            "--optim.betas",
            "0.9,0.99",
            "--model.share_embeddings",
            "false",
        ]
    )
    assert o["trainer"] == {"precision": "32", "max_minutes": None, "val_check_interval": 0.5}
    assert o["optim"]["betas"] == [0.9, 0.99] and o["model"]["share_embeddings"] is False
    cfg = RunConfig.from_dict(o)
    assert cfg.trainer.precision == "32" and cfg.optim.betas == (0.9, 0.99)
    assert parse_overrides(["--trainer.val_check_interval", "200"])["trainer"] == {
        "val_check_interval": 200
    }
    with pytest.raises(ConfigError, match="model.heads must be an integer, got '1.5'"):
        parse_overrides(["--model.heads", "1.5"])


def test_decode_config_is_the_one_source_of_the_decoding_defaults():
    assert (DECODE.beam, DECODE.alpha, DECODE.max_len_b) == (4, 0.6, 50)
    assert RunConfig().decode == DecodeConfig()
    with pytest.raises(ConfigError, match="decode.beam"):
        RunConfig.from_dict({"decode": {"beam": 0}})
    assert not DECODE.paper_bleu  # sacreBLEU alone unless asked
    with pytest.raises(ConfigError, match="decode.paper_bleu must be true or false, got 'yes'"):
        RunConfig.from_dict({"decode": {"paper_bleu": "yes"}})
