"""``hpsearch report``: every table and plot of a run, plus one self-contained ``index.html``."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hpsearch.ensemble import chosen_model, shipped_model
from hpsearch.errors import HpsearchError
from hpsearch.io import atomic_write
from hpsearch.report import plots
from hpsearch.report.tables import ensemble_comparison, importance, leaderboard, render, write_table
from hpsearch.rundir import (
    BEST_SINGLE,
    EVALUATION_DIR,
    REPORT_DIR,
    STUDY_FILE,
    SWEEPS_DIR,
    TEST_METRICS_FILE,
    RunDir,
    feasible,
    from_elsewhere,
    rank_models,
    read_table,
    study_url,
)


@dataclass
class Section:
    title: str
    table: pd.DataFrame | None = None
    images: list[Path] = field(default_factory=list)
    note: str = ""


@dataclass
class Report:
    run: RunDir
    formats: list[str]
    sections: list[Section] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.run.path

    @property
    def folder(self) -> Path:
        return self.run_dir / REPORT_DIR

    def add(self, title: str, name: str | None, table: pd.DataFrame | None, images=(), note: str = "") -> None:
        if table is not None and name:
            write_table(table, name, self.folder, self.formats, caption=title)
        self.sections.append(Section(title, table, [p for p in images if p], note))


def search_sections(report: Report) -> None:
    trials, history = report.run.trials, report.run.history()
    board = leaderboard(trials)
    failed = int((trials["status"] == "failed").sum())
    note = f"{len(trials)} trials, {int(trials['stopped_early'].fillna(False).astype(bool).sum())} stopped early"
    note += f", {failed} failed" if failed else ""
    report.add("Trial leaderboard", "leaderboard", board, note=note + ".")
    if history is not None and len(history):
        top = board[board["val_acc"].notna() & ~from_elsewhere(board)]["trial_id"].head(3).tolist()
        report.add("Training vs validation (top trials)", None, None,
                   [plots.learning_curves(history, top, report.folder / "learning_curves.png"),
                    plots.asha(history, trials, report.folder / "asha.png")])
    cost_section(report, trials)
    try:
        study = load_run_study(report.run)
    except HpsearchError as err:
        report.skipped.append(f"hyperparameter importance ({err})")
        return
    table = importance(study)
    if table is None:
        report.skipped.append("hyperparameter importance (needs a study with 2 or more finished trials)")
    else:
        report.add("Hyperparameter importance (fANOVA)", "importance", table,
                   [plots.importance_bars(table, report.folder / "importance.png")])


def cost_section(report: Report, trials: pd.DataFrame) -> None:
    """Accuracy against measured inference cost, with the trials that exceed the budget's bounds marked."""
    if "ms_per_image" not in trials or trials["ms_per_image"].isna().all():
        report.skipped.append("accuracy against inference cost (no trial measured its cost)")
        return
    budget = report.run.config.get("budget", {})
    ok = feasible(trials)
    bounds = [f"{k} = {budget[k]:g}" for k in ("max_ms_per_image", "max_params") if budget.get(k) is not None]
    note = (f"{int((~ok).sum())} of {len(trials)} trials exceed {' or '.join(bounds)}; the best trial is the best "
            f"feasible one." if bounds else "No deployment bound was set (budget.max_ms_per_image, max_params).")
    report.add("Accuracy against inference cost", None, None,
               [plots.cost_front(trials, ok, budget.get("max_ms_per_image"), report.folder / "cost_front.png")],
               note=note)


def load_run_study(run: RunDir):
    """The run's Optuna study, read-only; a missing or unreadable study.db is an HpsearchError saying which."""
    import optuna
    import sqlalchemy.exc

    if not (run.path / STUDY_FILE).is_file():
        raise HpsearchError(f"{STUDY_FILE} is missing from the run directory")
    try:
        return optuna.load_study(study_name=run.name, storage=study_url(run.path))
    except (KeyError, ValueError):
        raise HpsearchError(f"{STUDY_FILE} holds no study named {run.name!r}") from None
    except (sqlalchemy.exc.SQLAlchemyError, RuntimeError) as err:
        raise HpsearchError(f"{STUDY_FILE} cannot be read: {str(err).splitlines()[0][:120]}") from None


def sweep_sections(report: Report) -> None:
    files = sorted((report.run_dir / SWEEPS_DIR).glob("*.csv"))
    if not files:
        report.skipped.append("regularization sweeps (run `hpsearch sweep RUN_DIR --param NAME`)")
    for path in files:
        table = read_table(path)
        param = path.stem
        plot = plots.sweep(table, param, report.folder / f"sweep_{param}.png")
        report.add(f"Sweep: {param}", f"sweep_{param}", table, [plot],
                   note="Training accuracy is measured on the training split without augmentation at each run's "
                        "best epoch.")


CHOICE_NOTE = ("val_accuracy is in-sample: each trained model at its best epoch, and the methods fit on validation "
               "predictions (greedy, stacking, the soup's ingredients, temperatures) fit on all of it. "
               "val_accuracy_oof predicts every validation image with choices made without it (each model's epoch "
               "chosen on the other folds, each method refit on them; 5 folds unless `--folds` says otherwise), and it "
               "alone chooses the model, so that neither a lucky epoch nor the method best at memorizing validation "
               "wins.")


def selection_sections(report: Report) -> None:
    """How the model was chosen, and whether its validation gain over the best single trial exceeds the noise."""
    try:
        table = report.run.ensembles_table()
    except HpsearchError as err:
        report.skipped.append(f"model selection ({err})")
        return
    if table is None:
        report.skipped.append("model selection (run `hpsearch ensemble`)")
        return
    report.add("Model selection on validation (out of fold)", "model_selection", rank_models(table),
               note=CHOICE_NOTE + " " + significance_note(table))


def significance_note(table: pd.DataFrame) -> str:
    chosen = rank_models(table).iloc[0]
    if chosen["method"] == BEST_SINGLE:
        return f"Chosen: {chosen['model']}, the best single trial."
    gain, low, high = chosen["oof_gain_vs_best_single"], chosen["oof_gain_ci_low"], chosen["oof_gain_ci_high"]
    text = (f"Chosen: {chosen['model']}, {gain:+.3f} out-of-fold accuracy over the best single trial "
            f"(95% paired bootstrap over validation images: {low:+.3f} to {high:+.3f}) at "
            f"{chosen['relative_cost']:g}x its inference cost.")
    if low <= 0 and chosen["relative_cost"] > 1:
        text += (f" FLAG: the gain is inside the noise of the validation set, for a {chosen['relative_cost']:g}x "
                 f"costlier model; the best single trial is the safer choice to ship.")
    return text


def evaluation_sections(report: Report) -> None:
    run_dir = report.run_dir
    greedy = report.run.records().get("greedy")
    if greedy is not None and "trajectory" in greedy.details:
        report.add("Greedy selection trajectory", None, None,
                   [plots.greedy_trajectory(greedy.details["trajectory"], greedy.details["best_step"],
                                            report.folder / "greedy.png")])
    if not (run_dir / TEST_METRICS_FILE).is_file():
        report.skipped.append("test-set comparison (run `hpsearch ensemble` then `hpsearch evaluate`)")
        return
    comparison = ensemble_comparison(read_table(run_dir / TEST_METRICS_FILE))
    report.add("Test set: best single model vs ensembles", "ensemble_comparison", comparison,
               [plots.cost(comparison, report.folder / "cost.png")],
               note="95% Wilson confidence intervals; McNemar p-values against the best single trial; log-loss and "
                    "ECE before and after each model's temperature (fit on validation); +tta rows average "
                    "test-time views; +refit rows are a model's trials retrained on training + validation images "
                    "(no validation score; `ships`: what --model auto gives).")
    chosen = chosen_model(report.run)  # the model validation chose, never the best on test
    shipped = None if chosen is None else shipped_model(report.run, "auto").name  # its refit, if one was made
    best = next((name for name in (shipped, chosen) if name in set(comparison["model"])), BEST_SINGLE)
    per_class = run_dir / EVALUATION_DIR / f"per_class_{best}.csv"
    matrix = run_dir / EVALUATION_DIR / f"confusion_{best}.csv"
    if per_class.is_file() and matrix.is_file():
        confusion = read_table(matrix, {"true": str}).set_index("true")
        report.add(f"Per-class metrics ({best})", "per_class", read_table(per_class, {"class": str}),
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
             "table{border-collapse:collapse;font-size:13px;margin:1em 0;display:block;overflow-x:auto}"
             "td,th{border:1px solid #ccc;padding:3px 6px}"
             "th{background:#f3f3f3}img{max-width:100%;display:block;margin:1em 0}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>hpsearch report</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    return atomic_write(report.folder / "index.html", page)


def write_report(run_dir: Path, formats: list[str]) -> Report:
    """Write ``run_dir/report/``: tables in ``formats``, PNG plots and ``index.html``; missing stages are noted."""
    report = Report(RunDir(run_dir), formats)
    report.folder.mkdir(parents=True, exist_ok=True)
    search_sections(report)
    sweep_sections(report)
    selection_sections(report)
    evaluation_sections(report)
    write_html(report)
    return report
