"""Write the Table 3 replica as Markdown, LaTeX (booktabs), CSV and one self-contained HTML
page with the plots (PNG files too), and optionally log it to W&B."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import pandas as pd


def _fmt(v: Any, digits: int = 2, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"
    return str(v)


def _pm(mean: Any, std: Any, n: int) -> str:
    if mean is None or pd.isna(mean):
        return ""
    text = f"{mean:.2f}"
    if std is not None and not pd.isna(std):
        text += f" ± {std:.2f}"
    return f"{text} (n={n})"


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The human table: one formatted string per cell."""
    out = pd.DataFrame(
        {
            "row": frame["row"],
            "changes": frame["changes"],
            "params (M)": [_fmt(p / 1e6 if p else None, 1) for p in frame["params"]],
            "paper params (M)": [
                _fmt(p, 0) if p is not None and not pd.isna(p) else ""
                for p in frame["paper_params_m"]
            ],
            "dev PPL": [
                _pm(m, s, n)
                for m, s, n in zip(frame["ppl"], frame["ppl_std"], frame["n"], strict=True)
            ],
            "paper PPL": [_fmt(v) for v in frame["paper_ppl"]],
            "Δ PPL": [_fmt(v, signed=True) for v in frame["d_ppl"]],
            "paper Δ PPL": [_fmt(v, signed=True) for v in frame["paper_d_ppl"]],
            "agree PPL": frame["agree_ppl"],
            "dev BLEU": [
                _pm(m, s, n)
                for m, s, n in zip(frame["bleu"], frame["bleu_std"], frame["n"], strict=True)
            ],
            "paper BLEU": [_fmt(v, 1) for v in frame["paper_bleu"]],
            "Δ BLEU": [_fmt(v, signed=True) for v in frame["d_bleu"]],
            "paper Δ BLEU": [_fmt(v, 1, signed=True) for v in frame["paper_d_bleu"]],
            "agree BLEU": frame["agree_bleu"],
            "p (BLEU vs base)": [_fmt(v, 3) for v in frame["p_value"]],
            "steps": [_fmt(v, 0) for v in frame["steps"]],
            "wall (min)": [_fmt(v / 60 if v else None, 1) for v in frame["wall_s"]],
            "status": [
                s if not r else f"{s}: {r}"
                for s, r in zip(frame["status"], frame["reason"], strict=True)
            ],
        }
    )
    return out


def summary_lines(s: dict[str, Any], meta: dict[str, str]) -> list[str]:
    lines = [
        f"Direction of Δ vs base agrees with the paper on {s['agree_ppl']} of {s['judged_ppl']} "
        f"rows for dev PPL and {s['agree_bleu']} of {s['judged_bleu']} for BLEU.",
        "BLEU difference to base significant (paired bootstrap, p < 0.05, every seed): "
        + (", ".join(s["significant_rows"]) or "none")
        + ".",
        f"{s['complete_rows']} of {s['rows']} rows complete"
        + ("; " + ", ".join(f"{r}: {st}" for r, st in s["not_ok"].items()) if s["not_ok"] else "")
        + ".",
    ]
    lines += [f"{k}: {v}" for k, v in meta.items()]
    return lines


def plots(frame: pd.DataFrame, curves: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(8, 5))
    for row, curve in curves.items():
        ax.plot(curve["step"], curve["ppl"], label=row, linewidth=1)
    ax.set(
        xlabel="step",
        ylabel="dev PPL (per wordpiece)",
        yscale="log",
        title="Dev perplexity during training",
    )
    if curves:
        ax.legend(fontsize=6, ncol=3)
    paths.append(_save(fig, out / "curves.png"))

    done = frame[frame["bleu"].notna()]
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.errorbar(done["params"] / 1e6, done["bleu"], yerr=done["bleu_std"].fillna(0), fmt="o")
    for _, r in done.iterrows():
        ax.annotate(r["row"], (r["params"] / 1e6, r["bleu"]), fontsize=6)
    ax.set(xlabel="parameters (M)", ylabel="dev BLEU", title="BLEU vs parameters")
    paths.append(_save(fig, out / "bleu_vs_params.png"))

    rows = frame[frame["row"] != "base"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 6))
    for ax, metric, label in ((axes[0], "ppl", "Δ dev PPL"), (axes[1], "bleu", "Δ dev BLEU")):
        y = range(len(rows))
        ax.barh(
            [i + 0.2 for i in y],
            rows[f"d_{metric}"].fillna(0),
            height=0.4,
            xerr=rows[f"{metric}_std"].fillna(0),
            label="ours",
        )
        ax.barh(
            [i - 0.2 for i in y], rows[f"paper_d_{metric}"].fillna(0), height=0.4, label="paper"
        )
        ax.set_yticks(list(y), rows["row"], fontsize=7)
        ax.axvline(0, color="black", linewidth=0.5)
        ax.set(xlabel=f"{label} vs base")
        ax.legend(fontsize=7)
    fig.suptitle("Change vs base per row: ours (± std over seeds) beside the paper's")
    paths.append(_save(fig, out / "delta_vs_base.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_all(
    frame: pd.DataFrame,
    summary: dict[str, Any],
    meta: dict[str, str],
    curves: dict[str, pd.DataFrame],
    out: Path,
    notes: str | None = None,
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    shown = display_frame(frame)
    lines = summary_lines(summary, meta)
    written = []
    frame.to_csv(out / "table3.csv", index=False, float_format="%.4f")
    written.append(out / "table3.csv")
    title = f"Table 3 replica: {meta.get('protocol', '?')}"
    md = [
        f"# {title}",
        "",
        *[f"- {line}" for line in lines],
        "",
        shown.to_markdown(index=False),
        "",
    ]
    if notes:
        md += ["## Notes", "", notes.strip(), ""]
    (out / "table3.md").write_text("\n".join(md), encoding="utf-8")
    written.append(out / "table3.md")
    tex_cols = [
        "row",
        "params (M)",
        "dev PPL",
        "paper PPL",
        "Δ PPL",
        "paper Δ PPL",
        "dev BLEU",
        "paper BLEU",
        "Δ BLEU",
        "paper Δ BLEU",
        "p (BLEU vs base)",
    ]
    tex = shown[tex_cols].to_latex(index=False, escape=True, column_format="l" + "r" * 10)
    (out / "table3.tex").write_text(
        tex.replace("±", r"$\pm$").replace("Δ", r"$\Delta$"), encoding="utf-8"
    )
    written.append(out / "table3.tex")
    pngs = plots(frame, curves, out)
    written += pngs
    imgs = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{p.stem}</figcaption></figure>'
        for p in pngs
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}"
        f"</style></head><body><h1>{html.escape(title)}</h1><ul>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        + "</ul>"
        + shown.to_html(index=False, escape=True)
        + imgs
        + (_notes_html(notes) if notes else "")
        + "</body></html>"
    )
    (out / "index.html").write_text(page, encoding="utf-8")
    written.append(out / "index.html")
    return written


def _notes_html(notes: str) -> str:
    """The notes as paragraphs (their Markdown is shown as text, not rendered)."""
    paras = [p.strip() for p in notes.strip().split("\n\n") if p.strip()]
    return "<h2>Notes</h2>" + "".join(f"<p>{html.escape(p)}</p>" for p in paras)


def log_to_wandb(frame: pd.DataFrame, pngs: list[Path], study: str, out: Path, mode: str) -> None:
    """The table and the plots in a ``report`` run of the study's group."""
    from lit_transformer.training.loggers import resolve_wandb_mode

    mode = resolve_wandb_mode(mode)
    if mode == "disabled":
        return
    import wandb

    run = wandb.init(
        project="lit_transformer",
        group=study,
        job_type="report",
        name=f"{study}/report",
        dir=str(out),
        mode=mode,
        reinit="finish_previous",
    )
    table = display_frame(frame)
    run.log({"table3": wandb.Table(dataframe=table), **{p.stem: wandb.Image(str(p)) for p in pngs}})
    run.finish()
    wandb.teardown()  # leave no global W&B state behind for later runs in this process
