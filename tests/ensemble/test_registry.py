"""The ensemble-method registry: a new method is one registered class, and every stage applies it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from ensembles import scale_probabilities
from hpsearch.ensemble import METHODS, EnsembleMethod, FitContext, Fitted, build_ensembles, make_record, register_method
from hpsearch.ensemble.methods import EnsembleOptions
from hpsearch.evaluation import evaluate_run, predict_files
from hpsearch.rundir import ENSEMBLES_FILE, TEST_METRICS_FILE, RunDir, read_record, read_trials


class Median:
    """The per-class median of the members' probabilities, renormalized: learns nothing."""

    def __call__(self, stack: np.ndarray) -> np.ndarray:
        median = np.median(stack, axis=0)
        return median / median.sum(axis=1, keepdims=True)


@pytest.fixture
def toy_method():
    @register_method
    class MedianMethod(EnsembleMethod):
        name, learns_from_validation = "median", False

        def fit(self, ctx: FitContext) -> Fitted:
            return make_record(ctx, self.name, "Median", ctx.members, Median()(ctx.val_stack), params={})

        def combiner(self, record, val_stack, y_val):
            return Median()

    yield METHODS["median"]
    del METHODS["median"]


@pytest.fixture
def run(made_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(made_run, copy)
    return copy


def test_a_registered_method_appears_in_ensemble_evaluate_and_predict(toy_method, run, tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    table = build_ensembles(run, ["median", "average"], EnsembleOptions(top_k=3, tta=()))
    assert table["model"].tolist() == ["best_single", "average", "median"]  # registry order
    record = read_record(run / "ensembles" / "median.json")
    assert record.estimator == "Median" and len(record.members) == 3
    assert pd.read_csv(run / ENSEMBLES_FILE)["model"].tolist() == ["best_single", "average", "median"]
    # it learns nothing from validation: its out-of-fold score is its plain validation score
    assert record.val_accuracy_oof == record.val_accuracy

    metrics = evaluate_run(run)
    assert metrics["model"].tolist() == ["best_single", "average", "median"]  # registry order
    assert pd.read_csv(run / TEST_METRICS_FILE).set_index("model").loc["median", "members"] == 3

    digits = load_digits()
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.uint8(digits.images[i] * 255 / 16)).save(folder / f"{i}.png")
    predictions = predict_files(run, [folder], model="median")
    columns = [f"p_{c}" for c in RunDir(run).classes]
    assert len(predictions) == 6 and np.allclose(predictions[columns].sum(axis=1), 1.0)
    # the toy method's own rule, applied to its members' probabilities, gives the same probabilities
    from hpsearch.data import ImageArrays
    from hpsearch.evaluation import Predictor
    from hpsearch.evaluation.predict import decode_files, image_files

    opened = RunDir(run)
    _, images = decode_files(opened, image_files([folder]))
    predictor = Predictor(opened, ImageArrays(images, np.zeros(len(images), dtype=np.int64)))
    median = opened.record("median")
    stack = np.stack([predictor(opened.member_model(m)).probs for m in median.members])
    expected = scale_probabilities(Median()(stack), median.temperature)  # predict applies the temperature
    assert median.temperature != 1.0 and np.allclose(predictions[columns].to_numpy(), expected, atol=1e-6)


def test_an_unknown_method_names_the_choices(run):
    from hpsearch.errors import HpsearchError

    with pytest.raises(HpsearchError, match="Unknown ensemble method 'medain'.*Choose from best_single, average"):
        build_ensembles(run, ["medain"], EnsembleOptions())


def test_records_of_the_first_format_still_open(run):
    """A record written before records had a format number: extras beside the common fields, trial ids only
    inside member names. It is read, converted, and evaluate applies it."""
    trials = read_trials(run)["trial_id"].tolist()
    legacy = {"method": "greedy", "estimator": "GreedySelection", "params": {"max_size": 25, "random_state": 0},
              "members": [{"name": f"trial:{t}", "path": f"trials/{t}", "weight": w}
                          for t, w in zip(trials, (0.5, 0.5, 0.0), strict=True)],
              "val_accuracy": 0.5, "val_log_loss": 1.0, "trajectory": [{"step": 1}], "best_step": 2}
    (run / "ensembles").mkdir()
    (run / "ensembles" / "greedy.json").write_text(json.dumps(legacy))
    record = read_record(run / "ensembles" / "greedy.json")
    assert [m.trial_id for m in record.members] == trials
    assert record.details == {"trajectory": [{"step": 1}], "best_step": 2}
    assert evaluate_run(run).set_index("model").loc["greedy", "members"] == 2


def test_member_paths_outside_the_run_directory_are_refused(run):
    from hpsearch.errors import HpsearchError

    (run / "ensembles").mkdir()
    record = {"format": 2, "method": "average", "estimator": "SoftVoting", "params": {},
              "members": [{"name": "x", "path": "../../../../etc", "weight": 1.0}], "val_accuracy": 0.5,
              "val_log_loss": 1.0}
    (run / "ensembles" / "average.json").write_text(json.dumps(record))
    with pytest.raises(HpsearchError, match="points outside the run directory"):
        evaluate_run(run)
