from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import optuna
import pandas as pd
import pytest
from PIL import Image

from hpsearch.cli import main
from hpsearch.report import FORMATS, read_back, write_report
from hpsearch.rundir import read_trials


@pytest.fixture
def searched_run(tmp_path):
    """A run directory as `hpsearch tune` leaves it, with one failed trial and no ensembles."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"name": "synthetic", "seed": 0, "data": {"source": "digits"}}))
    study = optuna.create_study(study_name="synthetic", storage=f"sqlite:///{run / 'study.db'}", direction="maximize")
    rng = np.random.default_rng(0)
    rows, history = [], []
    for n in range(6):
        trial = study.ask()
        lr = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
        drop = trial.suggest_float("drop_rate", 0.0, 0.5)
        failed = n == 5
        epochs = 0 if failed else int(rng.integers(2, 6))
        accs = np.sort(rng.uniform(0.5, 0.9, epochs))
        for epoch, acc in enumerate(accs, start=1):
            history.append({"trial_id": f"t{n}", "optuna_trial": n, "epoch": epoch, "train_loss": 1 - acc,
                            "train_acc": acc + 0.05, "val_loss": 1.1 - acc, "val_acc": acc, "lr": lr,
                            "best_val_acc": acc, "epoch_seconds": 1.0, "time_total_s": float(epoch)})
        if failed:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, float(accs.max()))
        rows.append({"trial_id": f"t{n}", "optuna_trial": n, "status": "failed" if failed else "completed",
                     "learning_rate": lr, "drop_rate": drop, "epochs": epochs, "stopped_early": epochs < 5,
                     "stop_reason": "error" if failed else ("asha" if epochs < 5 else "max_epochs"),
                     "best_epoch": epochs or None, "val_acc": accs.max() if epochs else None,
                     "val_loss": 1.1 - accs.max() if epochs else None,
                     "train_acc": accs.max() + 0.05 if epochs else None, "wall_s": float(epochs),
                     "error": "RuntimeError: boom" if failed else "", "checkpoint": not failed})
    pd.DataFrame(rows).to_csv(run / "trials.csv", index=False)
    pd.DataFrame(history).to_csv(run / "history.csv", index=False)
    return run


def test_report_right_after_tune_shows_the_search_only(searched_run, capsys):
    assert main(["report", str(searched_run)]) == 0
    folder = searched_run / "report"
    for name in ("leaderboard", "importance"):
        for fmt in FORMATS:
            assert (folder / f"{name}.{fmt}").is_file(), f"{name}.{fmt}"
    for png in ("learning_curves.png", "asha.png", "importance.png"):
        with Image.open(folder / png) as image:
            image.verify()
    assert not (folder / "ensemble_comparison.csv").exists()
    out = capsys.readouterr().out
    assert "skipped: test-set comparison" in out and "skipped: regularization sweeps" in out
    page = (folder / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "Not in this report" in page


def test_failed_trial_is_listed_not_fatal(searched_run):
    write_report(searched_run, ["csv"])
    board = pd.read_csv(searched_run / "report" / "leaderboard.csv")
    assert len(board) == 6 and board.iloc[-1]["status"] == "failed" and pd.isna(board.iloc[-1]["val_acc"])
    assert board["val_acc"].iloc[:5].is_monotonic_decreasing


def test_tables_round_trip_through_csv_and_json(searched_run):
    write_report(searched_run, ["csv", "json"])
    for name in ("leaderboard", "importance"):
        from_csv = read_back(searched_run / "report" / f"{name}.csv")
        from_json = read_back(searched_run / "report" / f"{name}.json")
        pd.testing.assert_frame_equal(from_csv, from_json, check_dtype=False, check_exact=False, rtol=1e-12)
    importance = read_back(searched_run / "report" / "importance.csv")
    assert set(importance["parameter"]) == {"learning_rate", "drop_rate"}
    assert importance["importance"].sum() == pytest.approx(1.0)


def test_latex_is_escaped(searched_run):
    write_report(searched_run, ["tex"])
    tex = (searched_run / "report" / "leaderboard.tex").read_text()
    assert "\\begin{tabular}" in tex and "trial\\_id" in tex and "learning\\_rate" in tex
    body = tex.replace("\\_", "")
    assert "_" not in body


def test_bad_formats_and_missing_run(tmp_path, searched_run, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["report", str(searched_run), "--formats", "md,pdf"])
    assert stop.value.code == 2 and "argument --formats: invalid choice 'pdf'" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "not a finished hpsearch run" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_index_page_renders_in_headless_chromium(searched_run, tmp_path):
    write_report(searched_run, ["html"])
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400", f"--screenshot={shot}",
         (searched_run / "report" / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.shape[0] >= 2000 and (pixels < 200).mean() > 0.01  # not a blank page


def test_plots_leave_the_matplotlib_backend_and_pyplot_alone(tmp_path):
    import subprocess
    import sys

    code = ("import matplotlib, sys, pandas as pd; before = dict.__getitem__(matplotlib.rcParams, 'backend'); "
            "from hpsearch.report import plots; "
            "plots.importance_bars(pd.DataFrame({'parameter': ['lr'], 'importance': [1.0]}), "
            f"__import__('pathlib').Path({str(tmp_path / 'i.png')!r})); "
            "print(dict.__getitem__(matplotlib.rcParams, 'backend') == before, 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
    with Image.open(tmp_path / "i.png") as image:
        image.verify()


def test_accuracy_against_cost_marks_the_trials_over_the_bound(searched_run, capsys):
    trials = read_trials(searched_run)
    trials["ms_per_image"] = [0.5, 1.5, 0.7, 3.0, 0.9, None]
    trials["parameters"] = 1e5
    trials["feasible"] = trials["ms_per_image"].map(lambda ms: None if pd.isna(ms) else bool(ms <= 1.0))
    trials.to_csv(searched_run / "trials.csv", index=False)
    config = json.loads((searched_run / "config.json").read_text())
    (searched_run / "config.json").write_text(json.dumps({**config, "budget": {"max_ms_per_image": 1.0}}))
    report = write_report(searched_run, ["csv"])
    section = next(s for s in report.sections if s.title == "Accuracy against inference cost")
    assert "2 of 6 trials exceed max_ms_per_image = 1" in section.note
    with Image.open(searched_run / "report" / "cost_front.png") as image:
        image.verify()
    board = read_back(searched_run / "report" / "leaderboard.csv")
    assert board["feasible"].astype(str).str.lower().tolist()[:3] == ["true", "true", "true"]  # feasible first


def test_the_feasible_front_is_the_pareto_front():
    from hpsearch.report.plots import pareto_front

    costs, accs = np.array([1.0, 2.0, 0.5, 3.0, 2.5]), np.array([0.8, 0.9, 0.6, 0.85, 0.95])
    assert pareto_front(costs, accs).tolist() == [2, 0, 1, 4]
