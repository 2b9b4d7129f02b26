"""``hpsearch report``: every table and plot of a run, plus one self-contained ``index.html``."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hpsearch.io import atomic_write
from hpsearch.report import plots
from hpsearch.report.tables import ensemble_comparison, importance, leaderboard, render, write_table


@dataclass
class Section:
    title: str
    table: pd.DataFrame | None = None
    images: list[Path] = field(default_factory=list)
    note: str = ""


@dataclass
class Report:
    run_dir: Path
    formats: list[str]
    sections: list[Section] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.run_dir / "report"

    def add(self, title: str, name: str | None, table: pd.DataFrame | None, images=(), note: str = "") -> None:
        if table is not None and name:
            write_table(table, name, self.folder, self.formats, caption=title)
        self.sections.append(Section(title, table, [p for p in images if p], note))


def search_sections(report: Report) -> None:
    run_dir = report.run_dir
    trials = pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str})
    history = pd.read_csv(run_dir / "history.csv", dtype={"trial_id": str}) if (run_dir / "history.csv").is_file() else None
    board = leaderboard(trials)
    failed = int((trials["status"] == "failed").sum())
    note = f"{len(trials)} trials, {int(trials['stopped_early'].fillna(False).astype(bool).sum())} stopped early"
    note += f", {failed} failed" if failed else ""
    report.add("Trial leaderboard", "leaderboard", board, note=note + ".")
    if history is not None and len(history):
        top = board[board["val_acc"].notna()]["trial_id"].head(3).tolist()
        report.add("Training vs validation (top trials)", None, None,
                   [plots.learning_curves(history, top, report.folder / "learning_curves.png"),
                    plots.asha(history, trials, report.folder / "asha.png")])
    study = load_run_study(run_dir)
    table = importance(study) if study is not None else None
    if table is None:
        report.skipped.append("hyperparameter importance (needs a study with 2 or more finished trials)")
    else:
        report.add("Hyperparameter importance (fANOVA)", "importance", table,
                   [plots.importance_bars(table, report.folder / "importance.png")])


def load_run_study(run_dir: Path):
    import optuna

    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    if not (run_dir / "study.db").is_file():
        return None
    try:
        return optuna.load_study(study_name=config.get("name"), storage=f"sqlite:///{(run_dir / 'study.db').resolve()}")
    except (KeyError, ValueError):
        return None


def sweep_sections(report: Report) -> None:
    files = sorted((report.run_dir / "sweeps").glob("*.csv"))
    if not files:
        report.skipped.append("regularization sweeps (run `hpsearch sweep RUN_DIR --param NAME`)")
    for path in files:
        table = pd.read_csv(path)
        param = path.stem
        report.add(f"Sweep: {param}", f"sweep_{param}", table, [plots.sweep(table, param, report.folder / f"sweep_{param}.png")],
                   note="Training accuracy is measured on the training split without augmentation at each run's best epoch.")


def evaluation_sections(report: Report) -> None:
    run_dir = report.run_dir
    if (run_dir / "ensembles" / "greedy.json").is_file():
        greedy = json.loads((run_dir / "ensembles" / "greedy.json").read_text())
        report.add("Greedy selection trajectory", None, None,
                   [plots.greedy_trajectory(greedy["trajectory"], greedy["best_step"], report.folder / "greedy.png")])
    if not (run_dir / "test_metrics.csv").is_file():
        report.skipped.append("test-set comparison (run `hpsearch ensemble` then `hpsearch evaluate`)")
        return
    comparison = ensemble_comparison(pd.read_csv(run_dir / "test_metrics.csv"))
    report.add("Test set: best single model vs ensembles", "ensemble_comparison", comparison,
               [plots.cost(comparison, report.folder / "cost.png")],
               note="95% bootstrap confidence intervals; McNemar p-values against the best single trial.")
    best = comparison.sort_values("accuracy", ascending=False).iloc[0]["model"]
    per_class = run_dir / "evaluation" / f"per_class_{best}.csv"
    matrix = run_dir / "evaluation" / f"confusion_{best}.csv"
    if per_class.is_file() and matrix.is_file():
        confusion = pd.read_csv(matrix, index_col=0)
        report.add(f"Per-class metrics ({best})", "per_class", pd.read_csv(per_class),
                   [plots.confusion(confusion, f"Confusion matrix ({best}, test)", report.folder / "confusion.png")])


def embed(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def write_html(report: Report) -> Path:
    parts = [f"<h1>hpsearch report: {html.escape(report.run_dir.name)}</h1>"]
    for section in report.sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.note:
            parts.append(f"<p>{html.escape(section.note)}</p>")
        if section.table is not None:
            parts.append(render(section.table, "html"))
        parts += [embed(image) for image in section.images]
    if report.skipped:
        parts.append("<h2>Not in this report</h2><ul>" +
                     "".join(f"<li>{html.escape(s)}</li>" for s in report.skipped) + "</ul>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0;display:block;overflow-x:auto}td,th{border:1px solid #ccc;padding:3px 6px}"
             "th{background:#f3f3f3}img{max-width:100%;display:block;margin:1em 0}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>hpsearch report</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    return atomic_write(report.folder / "index.html", page)


def write_report(run_dir: Path, formats: list[str]) -> Report:
    """Write ``run_dir/report/``: tables in ``formats``, PNG plots and ``index.html``; missing stages are noted."""
    from hpsearch.evaluation import RunDir

    RunDir(run_dir)  # a clear error when this is no finished run
    report = Report(Path(run_dir), formats)
    report.folder.mkdir(parents=True, exist_ok=True)
    search_sections(report)
    sweep_sections(report)
    evaluation_sections(report)
    write_html(report)
    return report
