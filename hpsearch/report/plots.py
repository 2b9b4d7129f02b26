"""The report's figures (matplotlib, PNG): learning curves, ASHA, sweeps, confusion, selection, cost.

Figures are drawn with matplotlib's object-oriented API on an Agg canvas of their own: no pyplot, so the
process's backend and open figures stay as the caller left them (a notebook keeps its inline backend).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hpsearch.io import atomic_save


def subplots(ncols: int = 1, figsize: tuple[float, float] = (6, 4)):
    """A figure with its own Agg canvas, and its axes (one, or a tuple of ``ncols``)."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def save(fig: Figure, path: Path) -> Path:
    atomic_save(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    return path


def learning_curves(history: pd.DataFrame, trial_ids: list[str], path: Path) -> Path:
    """Train vs validation accuracy and loss per epoch for the top trials: the overfitting picture."""
    fig, (acc_ax, loss_ax) = subplots(2, figsize=(11, 4))
    for n, trial_id in enumerate(trial_ids):
        rows = history[history["trial_id"] == trial_id]
        color = f"C{n % 10}"
        acc_ax.plot(rows["epoch"], rows["train_acc"], "--", color=color)
        acc_ax.plot(rows["epoch"], rows["val_acc"], "-", color=color, label=trial_id)
        loss_ax.plot(rows["epoch"], rows["train_loss"], "--", color=color)
        loss_ax.plot(rows["epoch"], rows["val_loss"], "-", color=color, label=trial_id)
    acc_ax.set(title="Accuracy (dashed: training, solid: validation)", xlabel="epoch", ylabel="accuracy")
    loss_ax.set(title="Loss (dashed: training, solid: validation)", xlabel="epoch", ylabel="loss")
    acc_ax.legend(fontsize=8)
    return save(fig, path)


def asha(history: pd.DataFrame, trials: pd.DataFrame, path: Path) -> Path:
    """Validation accuracy of every trial against the epochs it ran: where ASHA and patience stopped it."""
    fig, ax = subplots(figsize=(7, 4.5))
    reasons = trials.set_index("trial_id")["stop_reason"].to_dict() if "stop_reason" in trials else {}
    styles = {"asha": ("C3", "ASHA"), "hyperband": ("C3", "Hyperband"), "median": ("C3", "median rule"),
              "patience": ("C1", "patience"), "max_epochs": ("C2", "ran all epochs"),
              "time_budget": ("C0", "time budget"), "infeasible": ("C4", "infeasible")}
    seen = set()
    for trial_id, rows in history.groupby("trial_id"):
        color, label = styles.get(reasons.get(trial_id), ("C7", "other"))
        ax.plot(rows["epoch"], rows["val_acc"], color=color, alpha=0.7, label=None if label in seen else label)
        ax.plot(rows["epoch"].iloc[-1], rows["val_acc"].iloc[-1], "o", color=color, ms=4)
        seen.add(label)
    ax.set(title="Validation accuracy per trial (dot: where it stopped)", xlabel="epoch", ylabel="val accuracy")
    ax.legend()
    return save(fig, path)


def sweep(table: pd.DataFrame, param: str, path: Path) -> Path:
    fig, ax = subplots(figsize=(6, 4))
    order = np.argsort(table["value"].to_numpy(dtype=float))
    x = np.arange(len(table)) if len(table) else []
    values = table["value"].to_numpy()[order]
    ax.plot(x, table["train_acc"].to_numpy()[order], "o--", label="training (no augmentation)")
    ax.plot(x, table["val_acc"].to_numpy()[order], "o-", label="validation")
    ax.bar(x, table["gap"].to_numpy()[order], alpha=0.25, color="C3", label="gap")
    ax.set_xticks(x, [f"{v:g}" for v in values])
    ax.set(title=f"Sweep of {param} (best epoch of each run)", xlabel=param, ylabel="accuracy")
    ax.legend(fontsize=8)
    return save(fig, path)


def confusion(matrix: pd.DataFrame, title: str, path: Path) -> Path:
    fig, ax = subplots(figsize=(1.0 + 0.6 * len(matrix), 0.8 + 0.6 * len(matrix)))
    ax.imshow(matrix.to_numpy(), cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix.to_numpy()):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    ax.set(title=title, xlabel="predicted", ylabel="true")
    return save(fig, path)


def greedy_trajectory(trajectory: list[dict], best_step: int, path: Path) -> Path:
    fig, ax = subplots(figsize=(6, 4))
    steps = [t["step"] for t in trajectory]
    ax.plot(steps, [t["accuracy"] for t in trajectory], "o-", label="ensemble after each pick")
    ax.plot(steps, [t["best_accuracy"] for t in trajectory], "--", label="best so far")
    ax.axvline(best_step, color="C3", alpha=0.5, label=f"kept: first {best_step} picks")
    ax.set(title="Greedy ensemble selection (validation)", xlabel="picks", ylabel="val accuracy")
    ax.legend(fontsize=8)
    return save(fig, path)


def importance_bars(table: pd.DataFrame, path: Path) -> Path:
    fig, ax = subplots(figsize=(6, 0.5 + 0.4 * len(table)))
    ordered = table.sort_values("importance")
    ax.barh(ordered["parameter"], ordered["importance"])
    ax.set(title="Hyperparameter importance (fANOVA)", xlabel="importance")
    return save(fig, path)


def cost(comparison: pd.DataFrame, path: Path) -> Path:
    fig, ax = subplots(figsize=(6.5, 4.5))
    low = comparison["accuracy"] - comparison["accuracy_ci_low"]
    high = comparison["accuracy_ci_high"] - comparison["accuracy"]
    ax.errorbar(comparison["ms_per_image"], comparison["accuracy"], yerr=[low, high], fmt="o", capsize=3)
    for _, row in comparison.iterrows():
        ax.annotate(row["model"], (row["ms_per_image"], row["accuracy"]), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
    ax.set(title="Test accuracy (95% CI) against inference cost", xlabel="ms per image (CPU)", ylabel="test accuracy")
    return save(fig, path)


def pareto_front(costs: np.ndarray, accuracies: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both cost (lower) and accuracy (higher), by cost."""
    order = np.lexsort((-accuracies, costs))
    front, best = [], -np.inf
    for index in order:
        if accuracies[index] > best:
            front.append(index)
            best = accuracies[index]
    return np.array(front, dtype=int)


def cost_front(trials: pd.DataFrame, feasible: pd.Series, bound: float | None, path: Path) -> Path:
    """Validation accuracy against inference ms per image: feasible trials (dots, with their Pareto front) and
    infeasible ones (crosses), and the latency bound."""
    fig, ax = subplots(figsize=(7, 4.5))
    shown = trials["ms_per_image"].notna() & trials["val_acc"].notna()
    ok, bad = trials[shown & feasible], trials[shown & ~feasible]
    ax.plot(ok["ms_per_image"], ok["val_acc"], "o", color="C0", label=f"feasible ({len(ok)})")
    if len(bad):
        ax.plot(bad["ms_per_image"], bad["val_acc"], "x", color="C3", ms=8, label=f"infeasible ({len(bad)})")
    if len(ok):
        front = ok.iloc[pareto_front(ok["ms_per_image"].to_numpy(float), ok["val_acc"].to_numpy(float))]
        ax.step(front["ms_per_image"], front["val_acc"], "-", where="post", color="C0", alpha=0.6,
                label="feasible front")
    if bound is not None:
        ax.axvline(bound, color="C3", ls="--", alpha=0.6, label=f"max_ms_per_image = {bound:g}")
    ax.set(title="Validation accuracy against inference cost (batch 1, trial's device)", xlabel="ms per image",
           ylabel="best val accuracy")
    ax.legend(fontsize=8)
    return save(fig, path)
