"""Choosing among models without fooling ourselves: out-of-fold scores, test-time views and temperatures."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from ensembles import (
    OutOfFoldChoice,
    ProbaEnsemble,
    TemperatureScaling,
    check_stack,
    cross_val_proba,
    scale_probabilities,
)
from hpsearch.ensemble import METHODS, build_ensembles, register_method
from hpsearch.ensemble.methods import EnsembleOptions, ProbabilityMethod, members_of
from hpsearch.errors import HpsearchError
from hpsearch.evaluation import evaluate_run, predict_files
from hpsearch.evaluation.metrics import expected_calibration_error
from hpsearch.rundir import (
    ENSEMBLES_FILE,
    EnsembleRecord,
    RunDir,
    SavedModel,
    copy_model_folder,
    rank_models,
    read_record,
    write_record,
)


@pytest.fixture
def run(made_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(made_run, copy)
    return copy


class Memorizer(ProbaEnsemble):
    """Looks up the label of every validation image it was fit on; knows nothing else (uniform elsewhere)."""

    def fit(self, probas: np.ndarray, y: np.ndarray) -> Memorizer:
        stack = check_stack(probas)
        self.table_ = {stack[:, i].tobytes(): int(label) for i, label in enumerate(y)}
        self.n_classes_ = stack.shape[2]
        return self

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        stack = check_stack(probas)
        out = np.full((stack.shape[1], self.n_classes_), 1.0 / self.n_classes_)
        for i in range(stack.shape[1]):
            label = self.table_.get(stack[:, i].tobytes())
            if label is not None:
                out[i] = np.eye(self.n_classes_)[label]
        return out


@pytest.fixture
def memorizer():
    @register_method
    class MemorizerMethod(ProbabilityMethod):
        name, estimator_class = "memorizer", Memorizer

    yield METHODS["memorizer"]
    del METHODS["memorizer"]


def test_an_overfitting_method_loses_the_selection_it_would_win_in_sample(memorizer, run):
    table = build_ensembles(run, ["memorizer", "average"], EnsembleOptions(top_k=3, tta=()))
    row = table.set_index("model").loc["memorizer"]
    assert row["val_accuracy"] == 1.0  # in-sample: it memorized validation
    assert row["val_accuracy_oof"] < 0.3  # refit without the images it scores, it knows nothing
    assert table.sort_values("val_accuracy", ascending=False).iloc[0]["model"] == "memorizer"  # the old rule
    assert rank_models(table).iloc[0]["model"] != "memorizer"  # the rule now
    assert table.set_index("model").loc[rank_models(table).iloc[0]["model"], "chosen"]
    assert table["chosen"].sum() == 1
    saved = pd.read_csv(run / ENSEMBLES_FILE)
    assert saved["chosen"].tolist() == table["chosen"].tolist()


def test_methods_that_learn_nothing_from_validation_report_their_plain_score(run):
    table = build_ensembles(run, ["average", "vote", "greedy"], EnsembleOptions(top_k=3, tta=())).set_index("model")
    for name in ("average", "vote"):
        assert table.loc[name, "val_accuracy_oof"] == table.loc[name, "val_accuracy"], name
    greedy = read_record(run / "ensembles" / "greedy.json")
    opened = RunDir(run)
    stack = np.stack([opened.trial_model(i).val_probs for i in opened.ranked_trials()["trial_id"].head(3)])
    from ensembles import GreedySelection

    y = opened.arrays("val").labels
    oof = cross_val_proba(lambda: GreedySelection(max_size=25, random_state=0), stack, y, 5, 0)
    assert greedy.val_accuracy_oof == pytest.approx((oof.argmax(1) == y).mean())  # refit per fold, same folds
    chosen = OutOfFoldChoice(y, 5, 0).choose(stack)  # which trial is best is chosen per fold as well
    assert table.loc["best_single", "val_accuracy_oof"] == pytest.approx((chosen.argmax(1) == y).mean())


def test_out_of_fold_scores_take_each_trials_out_of_fold_epoch_choice(run):
    """Where training kept its out-of-fold epoch choice, every out-of-fold score is made of it (the in-sample
    columns stay the best epoch's); a trial without one is scored at its best epoch. The best single trial is
    chosen per fold too: a trial whose epoch choice fails out of fold loses that choice, as it would on new images
    (before, the search's best trial was taken as given: here it scored 0.0 out of fold)."""
    from hpsearch.rundir import epoch_oof_file

    opened = RunDir(run)
    ids = list(opened.ranked_trials()["trial_id"].head(3))
    y = opened.arrays("val").labels
    models = [opened.trial_model(i) for i in ids]
    assert all((m.folder / epoch_oof_file(())).is_file() for m in models)  # training kept them (one epoch here)
    wrong = np.eye(10)[(y + 1) % 10] * 0.9 + 0.01  # an "epoch choice" wrong on every image
    np.save(models[0].folder / epoch_oof_file(()), wrong.astype(np.float32))
    np.save(models[0].folder / epoch_oof_file(("shift",)), wrong.astype(np.float32))
    (models[1].folder / epoch_oof_file(())).unlink()  # as a trial trained before the choice existed
    table = build_ensembles(run, ["average", "stacking"], EnsembleOptions(top_k=3)).set_index("model")
    best = table.loc["best_single"]
    assert best["val_accuracy"] == pytest.approx((models[0].val_probs.argmax(1) == y).mean())
    stack = np.stack([wrong, models[1].val_probs, np.load(models[2].folder / epoch_oof_file(()))])
    chosen = OutOfFoldChoice(y, 5, 0).choose(stack)
    assert best["val_accuracy_oof"] == pytest.approx((chosen.argmax(1) == y).mean())
    assert best["val_accuracy_oof"] > 0.3 and table.loc["best_single+tta", "val_accuracy_oof"] > 0.3
    assert not np.isclose(chosen, wrong).all(axis=1).any()  # no fold took the failing epoch choice
    assert table.loc["average", "val_accuracy_oof"] == pytest.approx((stack.mean(0).argmax(1) == y).mean())
    assert table.loc["average", "val_accuracy"] != table.loc["average", "val_accuracy_oof"]
    from ensembles import Stacking

    oof = cross_val_proba(lambda: Stacking(cv=5, random_state=0), stack, y, 5, 0)
    assert table.loc["stacking", "val_accuracy_oof"] == pytest.approx((oof.argmax(1) == y).mean())


def test_stackings_out_of_fold_score_sits_with_its_meta_learners_own_cross_validation(run):
    from ensembles import Stacking

    build_ensembles(run, ["stacking"], EnsembleOptions(top_k=3, tta=()))
    stacking = read_record(run / "ensembles" / "stacking.json")
    opened = RunDir(run)
    stack = np.stack([opened.trial_model(m.trial_id).val_probs for m in stacking.members])  # one epoch each
    own = Stacking(cv=5, random_state=0, cv_score=True).fit(stack, opened.arrays("val").labels).cv_accuracy_
    assert 0.0 < own <= 1.0 and abs(stacking.val_accuracy_oof - own) < 0.1  # the same estimate, other folds
    assert stacking.val_accuracy_oof <= stacking.val_accuracy + 1e-9  # out of fold is never the flattering one
    assert "meta_cv_accuracy" not in stacking.details  # not fit a second time inside the ensemble stage


def test_test_time_views_give_plus_tta_variants_chosen_per_method(run, tmp_path):
    table = build_ensembles(run, ["average"], EnsembleOptions(top_k=3, tta=("flip", "scale")))
    assert table["model"].tolist() == ["best_single", "best_single+tta", "average", "average+tta"]
    assert table.groupby("method")["variant_chosen"].sum().tolist() == [1, 1]  # one variant per method
    assert table.set_index("model").loc["average+tta", "relative_cost"] == 3 * 3  # 3 members x 3 views
    best = RunDir(run).best_model()
    assert (best.folder / "val_probs_tta-flip-scale.npy").is_file()  # computed once, kept beside the model
    metrics = evaluate_run(run).set_index("model")
    assert {"best_single", "best_single+tta", "average", "average+tta"} <= set(metrics.index)
    assert metrics.loc["average+tta", "tta"] == "flip+scale" and metrics.loc["average", "tta"] == ""
    assert metrics["chosen_by_validation"].sum() == 1
    chosen = rank_models(table).iloc[0]["model"]
    assert metrics.loc[chosen, "chosen_by_validation"]


def test_temperature_never_changes_the_argmax_and_lowers_the_log_loss():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    logits = rng.normal(size=(400, 4)) + 1.5 * np.eye(4)[y]
    overconfident = scale_probabilities(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 0.2)
    scaler = TemperatureScaling().fit(overconfident, y)
    calibrated = scaler.predict_proba(overconfident)
    assert scaler.temperature_ > 1.5  # it softens an overconfident model
    assert np.array_equal(calibrated.argmax(1), overconfident.argmax(1))
    from ensembles import log_loss

    assert log_loss(calibrated, y) < log_loss(overconfident, y)
    assert expected_calibration_error(calibrated, y) < expected_calibration_error(overconfident, y)


def test_evaluate_reports_calibration_before_and_after_and_predict_auto_uses_the_choice(run, tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    table = build_ensembles(run, ["average", "greedy"], EnsembleOptions(top_k=3, tta=()))
    metrics = evaluate_run(run).set_index("model")
    for name in metrics.index:
        assert {"log_loss", "log_loss_calibrated", "ece", "ece_calibrated", "temperature"} <= set(metrics.columns)
        assert metrics.loc[name, "temperature"] > 0
        low, high = metrics.loc[name, ["ece_change_ci_low", "ece_change_ci_high"]]
        assert -1 <= low <= high <= 1  # a paired bootstrap interval of ECE(calibrated) - ECE(raw)
    digits = load_digits()
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(np.uint8(digits.images[i] * 255 / 16)).save(folder / f"{i}.png")
    chosen = rank_models(table).iloc[0]["model"]
    auto = predict_files(run, [folder], model="auto")
    assert set(auto["model"]) == {chosen}
    explicit = predict_files(run, [folder], model=chosen)
    pd.testing.assert_frame_equal(auto, explicit)


def test_the_report_explains_the_choice_and_flags_a_costly_gain_inside_the_noise(run):
    from hpsearch.report.report import significance_note

    build_ensembles(run, ["average"], EnsembleOptions(top_k=3, tta=()))
    table = RunDir(run).ensembles_table()
    row = {"model": "average", "method": "average", "val_accuracy_oof": 0.99, "val_log_loss_oof": 0.1,
           "oof_gain_vs_best_single": 0.004, "oof_gain_ci_low": -0.01, "oof_gain_ci_high": 0.02, "relative_cost": 4}
    noisy = pd.concat([pd.DataFrame([row]), table], ignore_index=True)
    assert "FLAG: the gain is inside the noise" in significance_note(noisy)
    clear = noisy.assign(oof_gain_ci_low=np.where(noisy["model"] == "average", 0.002, noisy["oof_gain_ci_low"]))
    assert "FLAG" not in significance_note(clear.drop_duplicates("model"))


def test_the_library_selects_from_the_top_trials_and_the_members_bagging_trained(run):
    opened = RunDir(run)
    with pytest.raises(HpsearchError, match="--methods bagging,boosting,library"):
        build_ensembles(run, ["library"], EnsembleOptions(top_k=1, tta=()))
    build_ensembles(run, ["greedy"], EnsembleOptions(top_k=3, tta=()))
    greedy = read_record(run / "ensembles" / "greedy.json")
    # the 2nd and 3rd trials, copied where bagging keeps its members and recorded as its members
    ranked = opened.ranked_trials()["trial_id"].tolist()
    copies = [SavedModel(f"bagging:member_{k}", run / "ensembles" / "bagging" / f"member_{k}") for k in range(2)]
    for trial, copy in zip(ranked[1:3], copies, strict=True):
        copy_model_folder(opened.trial_model(trial).folder, copy.folder)
    write_record(run, EnsembleRecord("bagging", "Bagging", members_of(opened, copies), 0.5, 1.0))

    table = build_ensembles(run, ["library"], EnsembleOptions(top_k=1, tta=())).set_index("model")
    library = read_record(run / "ensembles" / "library.json")
    assert [m.path for m in library.members] == [f"trials/{ranked[0]}", "ensembles/bagging/member_0",
                                                 "ensembles/bagging/member_1"]
    # the same probabilities in the same order as greedy over the top 3 trials: the same selection
    assert library.weights == pytest.approx(greedy.weights)
    assert library.val_accuracy == pytest.approx(greedy.val_accuracy)
    assert table.loc["library", "val_accuracy_oof"] == pytest.approx(greedy.val_accuracy_oof)
    metrics = evaluate_run(run).set_index("model")  # applied like any ensemble, from the members' folders
    assert metrics.loc["library", "accuracy"] == pytest.approx(metrics.loc["greedy", "accuracy"])


def test_seeds_averages_the_best_trial_with_its_retrained_members_and_lends_them_to_the_library(run, monkeypatch):
    from hpsearch.ensemble.members import SeedsMethod

    opened = RunDir(run)
    with pytest.raises(HpsearchError, match=r"seeds needs --members 2 or more \(got 1\)"):
        build_ensembles(run, ["average", "seeds"], EnsembleOptions(top_k=1, members=1, tta=()))
    assert not (run / "ensembles").exists()  # refused before any method made its model
    # stand-ins for two runs from other seeds: the 2nd and 3rd trials, copied where seeds keeps its members
    ranked = opened.ranked_trials()["trial_id"].tolist()
    copies = [SavedModel(f"seeds:member_{k}", run / "ensembles" / "seeds" / f"member_{k}") for k in range(2)]
    for trial, copy in zip(ranked[1:3], copies, strict=True):
        copy_model_folder(opened.trial_model(trial).folder, copy.folder)
    monkeypatch.setattr(SeedsMethod, "train", lambda self, ctx: copies)

    table = build_ensembles(run, ["average", "seeds", "library"], EnsembleOptions(top_k=3, members=3, tta=()))
    seeds = read_record(run / "ensembles" / "seeds.json")
    assert [m.path for m in seeds.members] == [f"trials/{ranked[0]}", "ensembles/seeds/member_0",
                                               "ensembles/seeds/member_1"]
    assert seeds.weights == pytest.approx([1 / 3] * 3) and seeds.members[0].trial_id == ranked[0]
    y = opened.arrays("val").labels
    scores = [float((m.epoch_oof_probs(()).argmax(1) == y).mean()) for m in [opened.trial_model(ranked[0]), *copies]]
    assert seeds.details["best_trial_val_accuracy_oof"] == pytest.approx(scores[0])  # the search's choice
    assert seeds.details["reruns_val_accuracy_oof"] == pytest.approx(np.mean(scores[1:]))  # chosen by nothing
    # the same three models as the average of the top 3 trials: the same scores, in and out of fold, and on test
    table = table.set_index("model")
    assert table.loc["seeds", "val_accuracy"] == pytest.approx(table.loc["average", "val_accuracy"])
    assert table.loc["seeds", "val_accuracy_oof"] == pytest.approx(table.loc["average", "val_accuracy_oof"])
    library = read_record(run / "ensembles" / "library.json")  # the best trial once, the retrained members after it
    retrained = [m.path for m in seeds.members[1:]]
    assert [m.path for m in library.members] == [f"trials/{t}" for t in ranked[:3]] + retrained
    metrics = evaluate_run(run).set_index("model")
    assert metrics.loc["seeds", "accuracy"] == pytest.approx(metrics.loc["average", "accuracy"])


def test_methods_are_fit_in_the_registrys_order_whatever_order_they_are_asked_in(run, monkeypatch):
    import hpsearch.ensemble.build as build

    saved, original = [], build.save_scored

    def spy(opened: RunDir, record: EnsembleRecord, oof: np.ndarray) -> None:
        saved.append(record.name)
        original(opened, record, oof)

    monkeypatch.setattr(build, "save_scored", spy)
    build_ensembles(run, ["greedy", "average"], EnsembleOptions(top_k=3, tta=()))
    assert saved == ["best_single", "average", "greedy"]  # a method that draws on another's members comes after it


def test_a_model_that_was_not_built_gets_the_command_that_builds_it_or_the_names_to_choose_from(run):
    from hpsearch.ensemble.selection import resolve_model

    build_ensembles(run, ["average"], EnsembleOptions(top_k=3, tta=()))
    opened = RunDir(run)
    assert resolve_model(opened, "average").name == "average" and resolve_model(opened, "best").name == "best_single"
    for name, fix in (("greedy", f"run `hpsearch ensemble {run} --methods greedy` first, or name best."),
                      ("greedy+tta", f"run `hpsearch ensemble {run} --methods greedy` first"),
                      ("distilled", f"run `hpsearch distill {run} --teacher auto` first")):
        with pytest.raises(HpsearchError) as caught:
            resolve_model(opened, name)
        message = str(caught.value)
        assert message.startswith(f"No ensemble {name!r} in {str(run)!r} (built: average, best_single);"), message
        assert fix in message and "\n" not in message
    with pytest.raises(HpsearchError) as caught:  # not a method: no command that would fail, the choices instead
        resolve_model(opened, "averag")
    message = str(caught.value)
    assert "--methods" not in message and "name best, auto or a built model. Did you mean 'average'" in message
    assert message.endswith(f"Methods `hpsearch ensemble` builds: {', '.join(METHODS)}.")
