"""Write the Table 3 replica as Markdown, LaTeX (booktabs), CSV and one self-contained HTML
page with the plots (PNG files too), and optionally log it to W&B.

A report holds one or two studies, each given as ``(label, frame)`` with ``label`` its
protocol ("equal steps", "equal training time"): our columns appear once per study, each
labelled with its protocol, and the paper's once.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from lit_transformer.report.stats import (
    AGREES,
    CONFIDENCE,
    CONTRADICTS,
    INCONCLUSIVE,
    NO_CHANGE,
    PAPER_DECIMALS,
    VERDICTS,
    scipy_available,
)

Labelled = list[tuple[str, Any]]
# Dev BLEU as the paper computed it (bleu.paper_bleu), never mixed with the sacreBLEU columns.
PAPER_BLEU = "dev BLEU (paper-style)"

# Learning-curve plots, one per group (base drawn in each as the reference).
CURVE_GROUPS = (("A", ("A",)), ("B", ("B",)), ("C", ("C",)), ("D", ("D",)), ("E+big", ("E", "big")))

VERDICT_RULE = (
    "How to read the verdicts: for each row, metric and seed s completed by both the row and "
    "base, d_s = row_s − base_s. Δ is their mean d̄ over the n paired seeds and the interval is "
    f"the {CONFIDENCE:.0%} Student t interval d̄ ± t(0.975, n−1) · s_d / √n (s_d the sample "
    "standard deviation of the d_s; with 3 seeds t = 4.30, so the interval is wide). "
    "*agrees*: the interval excludes 0 on the side of the paper's Δ; *contradicts*: it excludes "
    "0 on the other side; *inconclusive*: it contains 0, or n = 1 (one seed gives no interval); "
    "*paper: no change*: the paper's own Δ is 0 at its printed rounding (PPL to "
    f"{PAPER_DECIMALS['ppl']} decimals, BLEU to {PAPER_DECIMALS['bleu']}: |Δ| below half a unit "
    "of the last digit), so it has no direction to agree with. Verdicts compare the direction "
    "of change, not which is better (a rise in PPL agrees with the paper's rise in PPL). The "
    "interval covers seed-to-seed variation only; the p-value column is sacreBLEU's paired "
    "bootstrap on the dev set (largest over seeds), which covers the dev-set sample instead. "
    "Each row is judged on its own (no correction for the ~20 comparisons). Spearman's ρ ranks "
    "our row means against the paper's figures (overall: every row with both numbers; per "
    "group: the group's rows and base), p from the t distribution with n − 2 degrees of freedom"
)


CURVES_FILE = "curves.csv"  # the learning curves, long: read back by the next report


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


def _ci(mean: Any, low: Any, high: Any, n: Any) -> str:
    """Paired Δ with its interval: ``+0.53 [+0.39, +0.68] (n=3)``; ``+0.53 (n=1)``."""
    if mean is None or pd.isna(mean):
        return ""
    text = f"{mean:+.2f}"
    if low is not None and not pd.isna(low):
        text += f" [{low:+.2f}, {high:+.2f}]"
    return f"{text} (n={int(n)})"


def _suffix(label: str, many: bool) -> str:
    return f" ({label})" if many else ""


def display_frame(tables: Labelled) -> pd.DataFrame:
    """The human table: one formatted string per cell. With one study its columns follow the
    paper's layout (ours beside the paper's per metric); with two, the paper's columns come
    first in each metric block and ours follow once per study, labelled with its protocol."""
    many = len(tables) > 1
    first = tables[0][1]
    cols: dict[str, Any] = {
        "row": first["row"],
        "changes": first["changes"],
        "params (M)": [_fmt(p / 1e6 if p else None, 1) for p in first["params"]],
        "paper params (M)": [
            _fmt(p, 0) if p is not None and not pd.isna(p) else "" for p in first["paper_params_m"]
        ],
    }
    for metric, name, pdig in (("ppl", "PPL", 2), ("bleu", "BLEU", 1)):
        paper = {
            f"paper {name}": [_fmt(v, pdig) for v in first[f"paper_{metric}"]],
            f"paper Δ {name}": [
                "" if r == "base" else _fmt(v, pdig, signed=True)
                for r, v in zip(first["row"], first[f"paper_d_{metric}"], strict=True)
            ],
        }
        ours: dict[str, Any] = {}
        for label, f in tables:
            sfx = _suffix(label, many)
            ours[f"dev {name}{sfx}"] = [
                _pm(m, s, n) for m, s, n in zip(f[metric], f[f"{metric}_std"], f["n"], strict=True)
            ]
            ours[f"Δ {name} [95% CI]{sfx}"] = [
                _ci(*v)
                for v in zip(
                    f[f"d_{metric}_paired"],
                    f[f"d_{metric}_low"],
                    f[f"d_{metric}_high"],
                    f[f"d_{metric}_n"],
                    strict=True,
                )
            ]
            ours[f"verdict {name}{sfx}"] = list(f[f"verdict_{metric}"])
        if many:
            cols |= paper | ours
        else:
            keys = [f"dev {name}", f"paper {name}", f"Δ {name} [95% CI]", f"paper Δ {name}"]
            cols |= {k: (ours | paper)[k] for k in [*keys, f"verdict {name}"]}
    for label, f in tables:
        if "bleu_paper" in f:  # only where trials scored it (decode.paper_bleu)
            cols[f"{PAPER_BLEU}{_suffix(label, many)}"] = [
                _pm(m, s, n)
                for m, s, n in zip(
                    f["bleu_paper"], f["bleu_paper_std"], f["bleu_paper_n"], strict=True
                )
            ]
    for label, f in tables:
        sfx = _suffix(label, many)
        cols[f"p (BLEU vs base){sfx}"] = [_fmt(v, 3) for v in f["p_value"]]
    for label, f in tables:
        sfx = _suffix(label, many)
        cols[f"steps{sfx}"] = [_fmt(v, 0) for v in f["steps"]]
        cols[f"wall (min){sfx}"] = [_fmt(v / 60 if v else None, 1) for v in f["wall_s"]]
        cols[f"status{sfx}"] = [
            s if not r else f"{s}: {r}" for s, r in zip(f["status"], f["reason"], strict=True)
        ]
    return pd.DataFrame(cols)


def _rho(entry: dict[str, Any]) -> str:
    if entry["rho"] is None:
        return f"ρ undefined (n = {entry['n']})"
    text = f"ρ = {entry['rho']:+.2f}"
    p = f", p = {entry['p']:.3g}" if entry["p"] is not None else ", no p-value"
    return f"{text} ({p.lstrip(', ')}, n = {entry['n']})"


def summary_lines(summaries: Labelled, meta: dict[str, str]) -> list[str]:
    """The bullet list at the top of the report: per study, the verdict counts, the overall
    rank correlations, the raw direction count, significance and completeness; then ``meta``."""
    many = len(summaries) > 1
    lines = []
    for label, s in summaries:
        pre = f"{label}: " if many else ""

        def counts(metric: str, s: dict[str, Any] = s) -> str:
            c = s[f"verdicts_{metric}"]
            return ", ".join(f"{v} {c[v]}" for v in VERDICTS)

        rank = s["spearman"]
        lines += [
            f"{pre}Verdicts ({CONFIDENCE:.0%} t interval of the per-seed differences to base): "
            f"dev PPL {counts('ppl')}; BLEU {counts('bleu')}.",
            f"{pre}Spearman rank correlation of our row values with the paper's: dev PPL "
            f"{_rho(rank['ppl']['all'])}; BLEU {_rho(rank['bleu']['all'])}.",
            f"{pre}Raw direction of the paired Δ vs base (sign only, noise ignored) agrees with "
            f"the paper on {s['agree_ppl']} of {s['judged_ppl']} rows for dev PPL and "
            f"{s['agree_bleu']} of {s['judged_bleu']} for BLEU.",
            f"{pre}BLEU difference to base significant (paired bootstrap, p < 0.05, every "
            "seed): " + (", ".join(s["significant_rows"]) or "none") + ".",
            f"{pre}{s['complete_rows']} of {s['rows']} rows complete"
            + (
                "; " + ", ".join(f"{r}: {st}" for r, st in s["not_ok"].items())
                if s["not_ok"]
                else ""
            )
            + ".",
        ]
    lines += [f"{k}: {v}" for k, v in meta.items()]
    return lines


def holds_lines(summaries: Labelled) -> list[str]:
    """What holds per group under each protocol, one line per group, e.g.
    ``A: PPL agrees 2/4 (equal steps), 1/4 (equal time); BLEU agrees 0/4 (equal steps), ...``
    where k/m counts the rows the paper changes (m: agrees + contradicts + inconclusive);
    contradicted rows are named, and rows where the paper shows no change are listed apart."""
    many = len(summaries) > 1
    groups = list(dict.fromkeys(g for _, s in summaries for g in s["groups"]))
    lines = []
    for g in groups:
        parts = []
        for metric, name in (("ppl", "PPL"), ("bleu", "BLEU")):
            per, unchanged, any_judged = [], set(), False
            for label, s in summaries:
                v = s["groups"].get(g, {}).get(metric)
                if v is None:
                    continue
                judged = len(v[AGREES]) + len(v[CONTRADICTS]) + len(v[INCONCLUSIVE])
                any_judged |= judged > 0
                unchanged |= set(v[NO_CHANGE])
                text = f"{len(v[AGREES])}/{judged}" if judged else "none judged"
                if v[CONTRADICTS]:
                    text += f", contradicts {len(v[CONTRADICTS])} ({', '.join(v[CONTRADICTS])})"
                per.append(text + _suffix(label, many))
            part = f"{name} agrees " + ", ".join(per) if any_judged else f"{name}: none judged"
            if unchanged:
                part += f" (paper: no change for {', '.join(sorted(unchanged))})"
            parts.append(part)
        lines.append(f"{g}: " + "; ".join(parts))
    return lines


def correlation_frame(summaries: Labelled) -> pd.DataFrame:
    """Spearman's ρ (and p, n) of our values with the paper's per scope (all rows, A–E)."""
    many = len(summaries) > 1
    scopes = list(dict.fromkeys(k for _, s in summaries for k in s["spearman"]["ppl"]))
    cols: dict[str, list[str]] = {
        "rows": ["all rows" if k == "all" else f"group {k} + base" for k in scopes]
    }
    for label, s in summaries:
        sfx = _suffix(label, many)
        for metric, name in (("ppl", "dev PPL"), ("bleu", "BLEU")):
            entries = [s["spearman"][metric].get(k) for k in scopes]
            cols[f"n {name}{sfx}"] = [str(e["n"]) if e else "" for e in entries]
            cols[f"ρ {name}{sfx}"] = [
                _fmt(e["rho"], 2, signed=True) if e and e["rho"] is not None else ""
                for e in entries
            ]
            cols[f"p {name}{sfx}"] = [
                f"{e['p']:.3g}" if e and e["p"] is not None else "" for e in entries
            ]
    return pd.DataFrame(cols)


def convergence_frame(long: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """How settled each row's dev curve is at its end, mean over seeds: the last validation
    step, dev PPL there, and its relative change since the previous validation,
    100 · (PPL_last − PPL_prev) / PPL_prev (greedy BLEU likewise, in points)."""
    rows = []
    for row in order:
        part = long[long["row"] == row]
        if part.empty:
            continue
        last, dppl, dbleu, bleu = [], [], [], []
        for _, seed in part.groupby("seed"):
            seed = seed.sort_values("step")
            last.append((int(seed["step"].iloc[-1]), float(seed["ppl"].iloc[-1])))
            bleu.append(float(seed["bleu"].iloc[-1]))
            if len(seed) > 1:
                prev = seed.iloc[-2]
                dppl.append(100 * (seed["ppl"].iloc[-1] - prev["ppl"]) / prev["ppl"])
                dbleu.append(float(seed["bleu"].iloc[-1] - prev["bleu"]))
        mean = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
        rows.append(
            {
                "row": row,
                "seeds": len(last),
                "last step": _fmt(mean([s for s, _ in last]), 0),
                "dev PPL at last step": _fmt(mean([p for _, p in last])),
                "PPL change over last interval (%)": _fmt(mean(dppl), 1, signed=True),
                "greedy BLEU at last step": _fmt(mean(bleu)),
                "BLEU change over last interval": _fmt(mean(dbleu), 2, signed=True),
            }
        )
    return pd.DataFrame(rows)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plots(tables: Labelled, curves: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    """curves.png (dev PPL by step, each row's lowest seed), bleu_vs_params.png and
    delta_vs_base.png (ours per study, error bars the 95% interval, beside the paper's)."""
    plt = _plt()
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

    many = len(tables) > 1
    fig, ax = plt.subplots(figsize=(7, 5))
    for (label, frame), marker in zip(tables, "os^", strict=False):
        done = frame[frame["bleu"].notna()]
        ax.errorbar(
            done["params"] / 1e6,
            done["bleu"],
            yerr=done["bleu_std"].fillna(0),
            fmt=marker,
            label=label if many else None,
        )
        for _, r in done.iterrows():
            ax.annotate(r["row"], (r["params"] / 1e6, r["bleu"]), fontsize=6)
    ax.set(xlabel="parameters (M)", ylabel="dev BLEU", title="BLEU vs parameters")
    if many:
        ax.legend(fontsize=7)
    paths.append(_save(fig, out / "bleu_vs_params.png"))

    first = tables[0][1]
    rows = first[first["row"] != "base"]
    k = len(tables) + 1
    height = 0.8 / k
    fig, axes = plt.subplots(1, 2, figsize=(11, 6))
    for ax, metric, label in ((axes[0], "ppl", "Δ dev PPL"), (axes[1], "bleu", "Δ dev BLEU")):
        y = list(range(len(rows)))
        for j, (name, frame) in enumerate(tables):
            f = frame.set_index("row").loc[rows["row"]]
            mean = f[f"d_{metric}_paired"]
            half = (f[f"d_{metric}_high"] - mean).fillna(0)
            ax.barh(
                [i + 0.4 - height * (j + 0.5) for i in y],
                mean.fillna(0),
                height=height,
                xerr=half,
                label=f"ours ({name})" if many else "ours",
            )
        ax.barh(
            [i - 0.4 + height / 2 for i in y],
            rows[f"paper_d_{metric}"].fillna(0),
            height=height,
            label="paper",
        )
        ax.set_yticks(y, rows["row"], fontsize=7)
        ax.axvline(0, color="black", linewidth=0.5)
        ax.set(xlabel=f"{label} vs base")
        ax.legend(fontsize=7)
    fig.suptitle("Change vs base per row: ours (mean of paired seeds, 95% interval), the paper's")
    paths.append(_save(fig, out / "delta_vs_base.png"))
    return paths


def curve_file(group: str) -> str:
    return f"curves_{group.replace('+', '-')}.png"


def group_curve_plots(
    long: pd.DataFrame, groups: list[tuple[str, str]], label: str, out: Path
) -> list[Path]:
    """One figure per group of :data:`CURVE_GROUPS` with a logged curve: dev PPL (and greedy
    dev BLEU where logged) by step for the group's rows and base, each seed faint and the mean
    over seeds (at each validation step) solid."""
    if long.empty:
        return []
    plt = _plt()
    group_of = dict(groups)
    order = [r for r, _ in groups]
    paths = []
    for name, members in CURVE_GROUPS:
        rows = [r for r in order if group_of[r] in members and (long["row"] == r).any()]
        if not rows:
            continue
        rows = (["base"] if (long["row"] == "base").any() else []) + rows
        has_bleu = long.loc[long["row"].isin(rows), "bleu"].notna().any()
        fig, axes = plt.subplots(1, 2 if has_bleu else 1, figsize=(12 if has_bleu else 7, 5))
        axes = list(axes) if has_bleu else [axes]
        for i, row in enumerate(rows):
            part = long[long["row"] == row]
            color = "black" if row == "base" else f"C{i % 10}"
            style = "--" if row == "base" else "-"
            for ax, metric in zip(axes, ("ppl", "bleu"), strict=False):
                for _, seed in part.groupby("seed"):
                    ax.plot(seed["step"], seed[metric], color=color, alpha=0.25, linewidth=0.8)
                mean = part.groupby("step")[metric].mean()
                n = part["seed"].nunique()
                legend = f"{row} (n={n})"
                ax.plot(mean.index, mean.values, style, color=color, linewidth=1.6, label=legend)
        axes[0].set(xlabel="step", ylabel="dev PPL (per wordpiece)", yscale="log")
        if has_bleu:
            axes[1].set(xlabel="step", ylabel="greedy dev BLEU")
        axes[0].legend(fontsize=7)
        fig.suptitle(f"Group {name}: dev curves ({label}; mean over seeds, each seed faint)")
        paths.append(_save(fig, out / curve_file(name)))
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _csv_frame(tables: Labelled) -> pd.DataFrame:
    """All studies' full frames, one line per protocol × row (``protocol`` first)."""
    parts = [f.assign(protocol=label)[["protocol", *f.columns]] for label, f in tables]
    return pd.concat(parts, ignore_index=True)


def lowest_seed(long: pd.DataFrame) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    for row, part in long.groupby("row", sort=True):
        first = part[part["seed"] == part["seed"].min()]
        out[str(row)] = first[["step", "ppl"]].reset_index(drop=True)
    return out


def _tex(shown: pd.DataFrame, many: bool) -> str:
    keep = ("row", "params (M)", "dev ", "paper ", "Δ ", "verdict ", "p (BLEU")
    if many:  # two studies: the changes and verdicts only (the full table is too wide)
        keep = ("row", "paper Δ", "Δ ", "verdict ")
    cols = [c for c in shown.columns if c.startswith(keep) and c != "paper params (M)"]
    tex = shown[cols].to_latex(index=False, escape=True, column_format="l" + "r" * (len(cols) - 1))
    return tex.replace("±", r"$\pm$").replace("Δ", r"$\Delta$")


def write_all(
    tables: Labelled,
    summaries: Labelled,
    meta: dict[str, str],
    long: pd.DataFrame,
    out: Path,
    notes: str | None = None,
    curves_label: str = "",
    groups: list[tuple[str, str]] | None = None,
) -> list[Path]:
    """Write table3.{csv,md,tex}, the plots and index.html into ``out``.

    ``tables``/``summaries``: ``(label, frame)``/``(label, summary)`` per study; ``long``: the
    learning curves (:func:`lit_transformer.report.learning_curves`) of the study labelled
    ``curves_label``; ``groups``: ``(row, group)`` in the ablation's order (default: the
    first table's).
    """
    out.mkdir(parents=True, exist_ok=True)
    many = len(tables) > 1
    first = tables[0][1]
    groups = groups or list(zip(first["row"], first["group"], strict=True))
    shown = display_frame(tables)
    lines = summary_lines(summaries, meta)
    holds = holds_lines(summaries)
    corr = correlation_frame(summaries)
    conv = convergence_frame(long, [r for r, _ in groups])
    written = []
    _csv_frame(tables).to_csv(out / "table3.csv", index=False, float_format="%.4f")
    written.append(out / "table3.csv")
    if not long.empty:  # kept for the next report, which may not see the run directories
        long.to_csv(out / CURVES_FILE, index=False, float_format="%.4f")
        written.append(out / CURVES_FILE)
    pngs = plots(tables, lowest_seed(long), out)
    curve_pngs = group_curve_plots(long, groups, curves_label or tables[0][0], out)
    written += pngs + curve_pngs
    title = f"Table 3 replica: {meta.get('protocol', '?')}"
    scipy_note = "scipy.stats.spearmanr" if scipy_available() else "computed here (no SciPy)"
    curves_title = f"Learning curves ({curves_label or tables[0][0]})"
    curves_intro = (
        "Dev PPL and greedy dev BLEU at each validation step, per group with base (dashed) as "
        "the reference; the table gives each row's last interval (mean over seeds), a small "
        "change meaning the row is near its plateau."
    )
    md = [
        f"# {title}",
        "",
        *[f"- {line}" for line in lines],
        "",
        "## What holds per group",
        "",
        "Rows whose change vs base agrees with the paper's (interval excludes 0 on its side), "
        "of the rows the paper changes:",
        "",
        *[f"- {line}" for line in holds],
        "",
        VERDICT_RULE + f" (Spearman: {scipy_note}).",
        "",
        shown.to_markdown(index=False, disable_numparse=True),
        "",
        "## Rank correlation with the paper",
        "",
        corr.to_markdown(index=False, disable_numparse=True),
        "",
        f"## {curves_title}",
        "",
    ]
    if curve_pngs:
        md += [curves_intro, "", *[f"![{p.stem}]({p.name})" for p in curve_pngs], ""]
        md += [conv.to_markdown(index=False, disable_numparse=True), ""]
    else:
        md += ["No learning curves: no trial's csv/metrics.csv was found.", ""]
    if notes:
        md += ["## Notes", "", notes.strip(), ""]
    (out / "table3.md").write_text("\n".join(md), encoding="utf-8")
    written.append(out / "table3.md")
    (out / "table3.tex").write_text(_tex(shown, many), encoding="utf-8")
    written.append(out / "table3.tex")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{PAGE_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        + _facts_html(meta)
        + "<ul>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in lines[: len(lines) - len(meta)])
        + "</ul><h2>What holds per group</h2><ul>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in holds)
        + f"</ul><h2>Rows</h2><p>{html.escape(VERDICT_RULE)} (Spearman: {html.escape(scipy_note)})."
        + "</p>"
        + results_table_html(shown)
        + "<h2>Rank correlation with the paper</h2>"
        + corr.to_html(index=False, escape=True)
        + _figures(pngs)
        + f"<h2>{html.escape(curves_title)}</h2>"
        + (
            f"<p>{html.escape(curves_intro)}</p>"
            + _figures(curve_pngs)
            + conv.to_html(index=False, escape=True)
            if curve_pngs
            else "<p>No learning curves: no trial's csv/metrics.csv was found.</p>"
        )
        + (_notes_html(notes) if notes else "")
        + f"<script>{PAGE_JS}</script></body></html>"
    )
    (out / "index.html").write_text(page, encoding="utf-8")
    written.append(out / "index.html")
    return written


PAGE_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1600px;color:#222}"
    "h1{margin-bottom:.3em}dl.facts{display:grid;grid-template-columns:max-content auto;"
    "gap:.2em 1em;background:#f5f7fa;border:1px solid #dde3ea;padding:.8em 1em;font-size:14px}"
    "dl.facts dt{font-weight:600;color:#456}dl.facts dd{margin:0;word-break:break-word}"
    "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px}"
    "th{background:#eef1f5;position:sticky;top:0}table.results th{cursor:pointer}"
    "table.results th[aria-sort=ascending]::after{content:' \\25B2'}"
    "table.results th[aria-sort=descending]::after{content:' \\25BC'}"
    "td.v-agrees{background:#d4edda}td.v-contradicts{background:#f8d7da}"
    "td.v-inconclusive{background:#fff3cd}td.v-no-change{background:#e2e3e5}"
    "#filter{margin:.5em 0;padding:4px 8px;width:22em}img{max-width:100%}"
    "figure{margin:1em 0}"
)

# Sort on a header's click (numbers by value, the rest as text), filter rows by any text; a
# link's fragment sets both (#filter=A-&sort=dev%20PPL), so a view can be shared; beside a
# second study a bare name sorts the first protocol's column ("dev PPL (equal steps)").
PAGE_JS = """
const t=document.querySelector('table.results'),f=document.getElementById('filter');
const num=s=>{const m=s.replace(/,/g,'').match(/^[+-]?\\d+(\\.\\d+)?/);
 return m?parseFloat(m[0]):null};
function filter(){const q=f.value.toLowerCase();for(const r of t.tBodies[0].rows)
 r.hidden=q&&!r.textContent.toLowerCase().includes(q);}
function sort(th,dir){const i=[...th.parentNode.children].indexOf(th),b=t.tBodies[0];
 const rows=[...b.rows],k=r=>r.cells[i].textContent.trim();
 rows.sort((x,y)=>{const a=num(k(x)),c=num(k(y));
  const v=(a!==null&&c!==null)?a-c:k(x).localeCompare(k(y));return dir==='ascending'?v:-v;});
 for(const h of th.parentNode.children)h.removeAttribute('aria-sort');
 th.setAttribute('aria-sort',dir);rows.forEach(r=>b.appendChild(r));}
for(const th of t.tHead.rows[0].cells)th.onclick=()=>sort(th,
 th.getAttribute('aria-sort')==='ascending'?'descending':'ascending');
f.oninput=filter;
const h=new URLSearchParams(location.hash.slice(1));
if(h.get('filter')){f.value=h.get('filter');filter();}
if(h.get('sort')){const k=h.get('sort'),hs=[...t.tHead.rows[0].cells];
 const th=hs.find(c=>c.textContent===k)||hs.find(c=>c.textContent.startsWith(k+' ('));
 if(th)sort(th,h.get('dir')||'ascending');}
"""


def _verdict_class(text: str) -> str:
    return {
        AGREES: "v-agrees",
        CONTRADICTS: "v-contradicts",
        INCONCLUSIVE: "v-inconclusive",
        NO_CHANGE: "v-no-change",
    }.get(text, "")


def results_table_html(shown: pd.DataFrame) -> str:
    """The rows as a sortable, filterable table, each verdict cell coloured by its verdict."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = []
    for _, row in shown.iterrows():
        cells = []
        for col, value in row.items():
            text = "" if value is None else str(value)
            cls = _verdict_class(text) if str(col).startswith("verdict") else ""
            attr = f' class="{cls}"' if cls else ""
            cells.append(f"<td{attr}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<input id="filter" type="search" placeholder="filter rows (e.g. A-, agrees, big)">'
        f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
        "</tbody></table>"
    )


def _facts_html(meta: dict[str, str]) -> str:
    """What made the numbers (protocol, scale, budget, seeds, hardware, precision, commands)."""
    items = "".join(
        f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in meta.items()
    )
    return f'<dl class="facts">{items}</dl>'


def _figures(pngs: list[Path]) -> str:
    """The plots embedded (the page stays self-contained), each captioned with a link to its
    PNG file beside the page."""
    return "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>'
        f'<a href="{html.escape(p.name)}">{html.escape(p.stem)}</a></figcaption></figure>'
        for p in pngs
    )


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
    table = display_frame([("", frame)])
    run.log({"table3": wandb.Table(dataframe=table), **{p.stem: wandb.Image(str(p)) for p in pngs}})
    run.finish()
    wandb.teardown()  # leave no global W&B state behind for later runs in this process
