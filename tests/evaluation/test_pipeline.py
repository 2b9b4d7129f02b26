"""tune -> ensemble -> evaluate -> predict on a small digits run, with the test split guarded."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hpsearch.cli import main
from hpsearch.data import TestSplitKey
from hpsearch.ensemble import METHODS
from hpsearch.ensemble.members import SEED_OFFSET
from hpsearch.rundir import SavedModel
from tests.conftest import write_recipe

MODELS = [name for method in METHODS for name in (method, f"{method}+tta")]

RECIPE = '''
name = "pipeline"
seed = 1
data = dict(source="digits", image_size=12)
train = dict(batch_size=32, flip=False, patience=3)
budget = dict(num_samples=4, max_epochs=3, grace_period=2, reduction_factor=2, max_concurrent=2)

def space(trial, options):
    trial.suggest_categorical("backbone", ["tutorial_cnn", "resnet10t"])
    trial.suggest_float("lr", 2e-3, 1e-2, log=True)
'''


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A search, every ensemble, the evaluation, a sweep and the report, with the guard's count of test-split
    reads taken after each stage (the guard in the data layer counts every decode of the test subset)."""
    folder = tmp_path_factory.mktemp("pipeline")
    run_dir = folder / "run"
    reads = {"start": TestSplitKey.reads}
    assert main(["tune", str(write_recipe(folder, RECIPE)), "--out", str(run_dir)]) == 0
    assert main(["ensemble", str(run_dir), "--top-k", "3", "--members", "2", "--member-epochs", "2"]) == 0
    assert main(["distill", str(run_dir), "--epochs", "2"]) == 0
    assert main(["refit", str(run_dir), "--model", "best"]) == 0
    reads["before_evaluate"] = TestSplitKey.reads
    assert main(["evaluate", str(run_dir)]) == 0
    reads["evaluate"] = TestSplitKey.reads
    assert main(["sweep", str(run_dir), "--param", "drop_rate", "--values", "0,0.5", "--epochs", "1"]) == 0
    assert main(["report", str(run_dir)]) == 0
    reads["end"] = TestSplitKey.reads
    return run_dir, reads


@pytest.mark.slow
def test_no_stage_before_evaluate_reads_the_test_split(finished_run):
    reads = finished_run[1]
    assert reads["before_evaluate"] == reads["start"]  # tune, ensemble, distill, refit never decoded the test images
    assert reads["evaluate"] == reads["start"] + 1  # evaluate decoded them once
    assert reads["end"] == reads["evaluate"]  # sweep and report read no test data either


@pytest.mark.slow
def test_ensemble_writes_every_method(finished_run):
    run_dir = finished_run[0]
    table = pd.read_csv(run_dir / "ensembles.csv")
    assert table["model"].tolist() == MODELS  # each method plain and with test-time views (shifts: no flips here)
    for name in MODELS:
        record = json.loads((run_dir / "ensembles" / f"{name}.json").read_text())
        assert record["method"] == name.removesuffix("+tta") and record["members"]
        assert record["tta"] == (["shift"] if name.endswith("+tta") else [])
        assert abs(sum(m["weight"] for m in record["members"]) - 1.0) < 1e-6 or name.startswith("soup")
        assert 0.0 <= record["val_accuracy_oof"] <= 1.0 and record["temperature"] > 0
    assert table["chosen"].sum() == 1 and (table.groupby("method")["variant_chosen"].sum() == 1).all()
    bagging = json.loads((run_dir / "ensembles" / "bagging.json").read_text())
    first, second = [np.load(run_dir / m["path"] / "val_probs.npy") for m in bagging["members"]]
    assert not np.allclose(first, second)  # members trained on different resamples differ
    greedy = json.loads((run_dir / "ensembles" / "greedy.json").read_text())
    assert greedy["details"]["trajectory"][0]["member"] == 0  # the best trial comes first
    seeds = json.loads((run_dir / "ensembles" / "seeds.json").read_text())
    best, retrained = [SavedModel(m["name"], run_dir / m["path"]) for m in seeds["members"]]
    assert seeds["members"][0]["path"] == greedy["members"][0]["path"]  # the best trial is the first member
    assert retrained.folder.parent == run_dir / "ensembles" / "seeds" and retrained.trial_id is None
    assert retrained.config.seed == best.config.seed + SEED_OFFSET + 1  # the same configuration, another seed
    assert retrained.config.epochs == seeds["details"]["member_epochs"] == 2  # --member-epochs
    assert dataclasses.replace(retrained.config, seed=best.config.seed, epochs=best.config.epochs) == best.config
    assert not np.allclose(np.load(best.folder / "val_probs.npy"), np.load(retrained.folder / "val_probs.npy"))
    library = json.loads((run_dir / "ensembles" / "library.json").read_text())
    trained = {m["path"] for method in ("bagging", "seeds", "boosting")
               for m in json.loads((run_dir / "ensembles" / f"{method}.json").read_text())["members"]}
    assert {m["path"] for m in library["members"]} == {m["path"] for m in greedy["members"]} | trained


@pytest.mark.slow
def test_evaluate_writes_metrics_and_is_repeatable(finished_run):
    run_dir = finished_run[0]
    first = pd.read_csv(run_dir / "test_metrics.csv")
    refit = [name for name in first["model"] if name.endswith("+refit")]  # best's variant validation chose, refit
    assert refit in (["best_single+refit"], ["best_single+tta+refit"])
    expected = list(MODELS)
    expected.insert(expected.index(refit[0].removesuffix("+refit")) + 1, refit[0])  # beside its model
    assert first["model"].tolist() == expected
    assert first["refit"].tolist() == [name.endswith("+refit") for name in first["model"]]
    for column in ("accuracy", "balanced_accuracy", "precision_macro", "recall_weighted", "f1_macro",
                   "f1_weighted", "roc_auc_ovr_macro", "log_loss", "ece", "accuracy_ci_low", "accuracy_ci_high",
                   "mcnemar_p_vs_best_single", "parameters", "ms_per_image", "log_loss_calibrated",
                   "ece_calibrated", "ece_change_ci_low", "ece_change_ci_high", "temperature"):
        assert first[column].notna().all(), column
    assert first.loc[0, "mcnemar_p_vs_best_single"] == 1.0
    assert (run_dir / "evaluation" / "confusion_greedy.csv").is_file()
    assert main(["evaluate", str(run_dir)]) == 0
    second = pd.read_csv(run_dir / "test_metrics.csv")
    timing = ["ms_per_image"]  # wall-clock time: the one column that may differ
    pd.testing.assert_frame_equal(first.drop(columns=timing), second.drop(columns=timing))


@pytest.mark.slow
def test_predict_labels_a_folder(finished_run, tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder = tmp_path / "new"
    folder.mkdir()
    for i in range(8):
        Image.fromarray(np.uint8(digits.images[i] * 255 / 16)).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"nope")
    out = tmp_path / "pred.csv"
    with pytest.warns(UserWarning, match="unreadable"):
        assert main(["predict", str(finished_run[0]), str(folder), "--model", "average", "--output", str(out)]) == 0
    table = pd.read_csv(out, dtype={"class": str})
    assert len(table) == 8 and {"path", "class", "probability", "p_0", "p_9"} <= set(table.columns)
    truth = [str(digits.target[int(p.split("/")[-1][0])]) for p in table["path"]]
    assert (table["class"] == truth).mean() >= 0.75


@pytest.mark.slow
def test_sweep_and_full_report(finished_run):
    run_dir = finished_run[0]
    sweep = pd.read_csv(run_dir / "sweeps" / "drop_rate.csv")
    assert sweep["value"].tolist() == [0.0, 0.5]
    assert np.allclose(sweep["gap"], sweep["train_acc"] - sweep["val_acc"])
    report = run_dir / "report"
    for name in ("leaderboard", "ensemble_comparison", "per_class", "sweep_drop_rate"):
        for fmt in ("md", "csv", "tex", "html", "json"):
            assert (report / f"{name}.{fmt}").is_file(), f"{name}.{fmt}"
    for png in ("learning_curves.png", "asha.png", "greedy.png", "cost.png", "confusion.png", "sweep_drop_rate.png"):
        with Image.open(report / png) as image:
            image.verify()
    page = (report / "index.html").read_text()
    for title in ("Trial leaderboard", "Sweep: drop_rate", "Test set: best single model vs ensembles",
                  "Greedy selection trajectory", "Per-class metrics"):
        assert title in page, title
