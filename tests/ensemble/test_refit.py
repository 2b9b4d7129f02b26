"""`hpsearch refit`: the chosen model's trials retrained on training + validation images, never ranked, shipped."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import numpy as np
import pytest
import torch

from hpsearch.cli import main
from hpsearch.data import TestSplitKey
from hpsearch.ensemble import build_ensembles, chosen_model, ordered_records, refit_run, resolve_model, shipped_model
from hpsearch.ensemble import refit as refit_module
from hpsearch.ensemble.methods import EnsembleOptions, record_models
from hpsearch.evaluation import evaluate_run
from hpsearch.evaluation.deployed import DeployedModel
from hpsearch.evaluation.export import export_model
from hpsearch.evaluation.predict import predict_arrays
from hpsearch.io import read_json
from hpsearch.report import write_report
from hpsearch.rundir import EnsembleRecord, Member, RunDir, write_record
from hpsearch.training import Trainer, TrialConfig


@pytest.fixture
def run(made_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(made_run, copy)
    build_ensembles(copy, ["average", "greedy"], EnsembleOptions(top_k=3, tta=()))
    return copy


def test_training_without_validation_is_the_trials_training_without_its_validation_passes(tiny_data):
    config = TrialConfig(backbone="tutorial_cnn", lr=3e-3, epochs=3, batch_size=16, seed=5)
    validated = Trainer(config, tiny_data)
    validated.fit()
    blind = Trainer(config, tiny_data)
    blind.evaluate = blind.predict = None  # never called: a refit has no validation images of its own
    state = blind.train_without_validation(3)
    for key, value in validated.model.state_dict().items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)
    assert [h["epoch"] for h in blind.history] == [1, 2, 3]
    with pytest.raises(ValueError, match="1..3"):
        Trainer(config, tiny_data).train_without_validation(4)


def test_training_without_validation_stops_inside_the_schedule_where_the_trial_was(tiny_data):
    config = TrialConfig(backbone="tutorial_cnn", lr=3e-3, epochs=3, batch_size=16, seed=2)
    validated = Trainer(config, tiny_data)
    validated.run_epoch()
    validated.run_epoch()  # a trial whose best epoch is 2 of 3: its weights there, its learning rate not annealed
    state = Trainer(config, tiny_data).train_without_validation(2)
    for key, value in validated.model.state_dict().items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)


def test_refit_retrains_the_chosen_model_on_training_and_validation_images(run, monkeypatch):
    opened = RunDir(run)
    chosen = resolve_model(opened, "auto")
    seen = []

    class Spy(Trainer):
        def __init__(self, config, data, *args, **kwargs):
            seen.append((config, data.train.labels))
            super().__init__(config, data, *args, **kwargs)

    monkeypatch.setattr(refit_module, "Trainer", Spy)
    reads = TestSplitKey.reads
    record = refit_run(run)
    assert TestSplitKey.reads == reads  # the test split is evaluate's alone
    both = np.concatenate([opened.arrays("train").labels, opened.arrays("val").labels])
    assert len(seen) == len(chosen.used_members()) and all(np.array_equal(labels, both) for _, labels in seen)
    assert [c.seed for c, _ in seen] == [opened.member_model(m).config.seed for m in chosen.used_members()]
    assert record.name == f"{chosen.name}+refit" and record.members == chosen.members
    n_images = len(opened.arrays("train")) + len(opened.arrays("val"))
    originals, refits = record_models(opened, chosen), record_models(opened, record)
    for member, original, refit in zip(record.members, originals, refits, strict=True):
        info = read_json(refit.folder / "best.json")
        assert refit.folder.parent.name == "refit" and refit.trial_id == member.trial_id
        assert info["images"] == n_images and info["trained_on"] == "train+val"
        assert info["epoch"] == original.info["epoch"] and info["config"] == original.info["config"]
        assert not (refit.folder / "val_probs.npy").exists()  # no validation score: it trained on those images
        assert any(not torch.equal(a, b) for a, b in zip(refit.state_dict().values(),
                                                          original.state_dict().values(), strict=True))
    # never ranked: ensembles.csv (rebuilt) leaves it out, the chosen model stays the one validation chose
    table = build_ensembles(run, ["average", "greedy"], EnsembleOptions(top_k=3, tta=()))
    assert not table["model"].str.endswith("+refit").any() and chosen_model(opened) == chosen.name
    assert resolve_model(opened, "auto").name == chosen.name and shipped_model(opened, "auto").name == record.name
    assert shipped_model(opened, "best").name == "best_single"  # a name asked for is that model


def test_evaluate_scores_the_refit_beside_its_model_and_marks_what_ships(run):
    chosen = resolve_model(RunDir(run), "auto").name
    refit_run(run)
    metrics = evaluate_run(run).set_index("model")
    refit = f"{chosen}+refit"
    assert metrics["refit"].tolist().count(True) == 1 and bool(metrics.loc[refit, "refit"])
    assert np.isnan(metrics.loc[refit, "val_accuracy_oof"])  # it has no validation score
    assert metrics.index[metrics["chosen_by_validation"]].tolist() == [chosen]
    assert metrics.index[metrics["ships"]].tolist() == [refit]
    assert metrics.loc[refit, "members"] == metrics.loc[chosen, "members"]


def test_predict_with_auto_uses_the_refit_and_a_second_refit_trains_nothing(run, monkeypatch):
    images = RunDir(run).arrays("val").images[:10].transpose(0, 2, 3, 1)
    chosen = resolve_model(RunDir(run), "auto").name
    assert set(predict_arrays(run, images, "auto")["model"]) == {chosen}
    refit_run(run)
    assert set(predict_arrays(run, images, "auto")["model"]) == {f"{chosen}+refit"}
    assert set(predict_arrays(run, images, chosen)["model"]) == {chosen}
    average = refit_run(run, "average")
    monkeypatch.setattr(Trainer, "train_without_validation", lambda *a: pytest.fail("trained again"))
    assert refit_run(run, "average").name == "average+refit"  # its members' refits are on disk already
    best = refit_run(run, "best")  # the best trial is one of the three the average weighs: reused too
    assert best.refit[0] in set(average.refit)


def test_a_refit_written_before_a_config_field_existed_is_reused_and_another_config_is_not(run, monkeypatch):
    model = refit_run(run, "best")
    best_json = run / model.refit[0] / "best.json"
    info = read_json(best_json)
    del info["config"]["ema_decay"]  # as the version before train.ema_decay wrote it; its default is 0
    best_json.write_text(json.dumps(info))
    monkeypatch.setattr(Trainer, "train_without_validation", lambda *a: pytest.fail("trained again"))
    refit_run(run, "best")
    info["config"]["lr"] *= 2  # another configuration in the folder: trained again
    best_json.write_text(json.dumps(info))
    with pytest.raises(pytest.fail.Exception, match="trained again"):
        refit_run(run, "best")


def test_the_report_shows_the_per_class_table_of_the_model_that_ships(run):
    refit = refit_run(run)
    evaluate_run(run)
    report = write_report(run, ["md"])
    titles = [section.title for section in report.sections]
    assert f"Per-class metrics ({refit.name})" in titles


def test_export_with_auto_writes_the_refit(run, tmp_path):
    refit = refit_run(run)
    deployed = DeployedModel(export_model(run, "auto", "torchscript", tmp_path / "auto.pt"))
    assert deployed.name == refit.name
    images = RunDir(run).arrays("val").images[:16].transpose(0, 2, 3, 1)
    table = predict_arrays(run, images, "auto")
    expected = table[[f"p_{name}" for name in RunDir(run).classes]].to_numpy()
    np.testing.assert_allclose(deployed.predict_proba(images), expected, atol=1e-4)


def test_rebuilding_a_model_removes_its_refit_unless_it_is_the_same(run):
    refit_run(run, "average")
    build_ensembles(run, ["average"], EnsembleOptions(top_k=3, tta=()))  # the same average: its refit stays
    assert "average+refit" in RunDir(run).records()
    build_ensembles(run, ["average"], EnsembleOptions(top_k=2, tta=()))  # another average
    assert "average+refit" not in RunDir(run).records() and (run / "refit").is_dir()


def test_views_and_members_of_weight_zero(run, monkeypatch):
    build_ensembles(run, ["average"], EnsembleOptions(top_k=3, tta=("shift",)))
    record = resolve_model(RunDir(run), "average+tta")
    members = tuple(dataclasses.replace(m, weight=w) for m, w in zip(record.members, (1.0, 0.0, 0.0), strict=True))
    write_record(run, dataclasses.replace(record, members=members))
    trained = []

    class Counted(Trainer):
        def __init__(self, config, *args, **kwargs):
            trained.append(config)
            super().__init__(config, *args, **kwargs)

    monkeypatch.setattr(refit_module, "Trainer", Counted)
    refit = refit_run(run, "average+tta")
    assert refit.name == "average+tta+refit" and refit.tta == ("shift",) and len(trained) == 1
    assert refit.refit[0] is not None and refit.refit[1:] == (None, None)  # weight 0: never run, never retrained
    names = [r.name for r in ordered_records(RunDir(run))]
    assert names.index("average+tta+refit") == names.index("average+tta") + 1


def test_a_refit_of_a_model_that_changed_since_is_not_shipped(run, caplog):
    refit = refit_run(run)
    original = resolve_model(RunDir(run), "auto")
    write_record(run, dataclasses.replace(original, temperature=original.temperature * 2))  # rebuilt since
    with caplog.at_level(logging.WARNING, logger="hpsearch"):
        assert shipped_model(RunDir(run), "auto").name == original.name != refit.name
    assert "was refit before" in caplog.text


def test_refit_before_any_ensemble_and_models_that_cannot_be_refit(run, made_run, tmp_path, capsys):
    fresh = tmp_path / "fresh"
    shutil.copytree(made_run, fresh)
    assert main(["refit", str(fresh)]) == 2  # auto needs the choice ensemble makes
    assert "run `hpsearch ensemble" in capsys.readouterr().err
    assert main(["refit", str(fresh), "--model", "best"]) == 0
    assert "best_single+refit" in capsys.readouterr().out
    assert [r["model"] for r in evaluate_run(fresh).to_dict("records")] == ["best_single", "best_single+refit"]
    assert main(["refit", str(fresh), "--model", "best_single+refit"]) == 2
    assert "a refit already" in capsys.readouterr().err
    assert main(["distill", str(fresh)]) == 2  # a refit is no ensemble to learn from
    assert "run `hpsearch ensemble" in capsys.readouterr().err
    trained = EnsembleRecord("bagging", "Bagging", (Member("bagging:m0", "ensembles/bagging/m0", 1.0),), 0.9, 0.3)
    write_record(run, trained)
    assert main(["refit", str(run), "--model", "bagging"]) == 2
    assert "made of models trained after the search" in capsys.readouterr().err
    assert main(["predict", str(run), str(tmp_path), "--model", "bagging+refit"]) == 2
    assert "only models of search trials can be refit, and bagging is not one" in capsys.readouterr().err
    assert main(["predict", str(run), str(tmp_path), "--model", "greedy+refit"]) == 2
    assert f"hpsearch refit {run} --model greedy" in capsys.readouterr().err
    refit_run(run, "average")
    assert main(["distill", str(run), "--teacher", "average+refit"]) == 2
    assert "--teacher average" in capsys.readouterr().err


def test_a_population_based_search_is_not_refit(run, capsys):
    config = read_json(run / "config.json")
    (run / "config.json").write_text(json.dumps({**config, "budget": {"scheduler": "pbt"}}))
    assert main(["refit", str(run), "--model", "best"]) == 2
    assert "population-based training" in capsys.readouterr().err and not (run / "refit").exists()
