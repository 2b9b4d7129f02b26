"""`hpsearch export`: one deployable file whose predictions are the run's, and `predict FILE.onnx` without the run."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import hpsearch.evaluation.evaluate as evaluate_module
from ensembles import scale_probabilities
from hpsearch.cli import main
from hpsearch.data.dataset import ImageArrays
from hpsearch.ensemble import build_ensembles, ensemble_combiner, record_models, resolve_model
from hpsearch.ensemble.methods import EnsembleOptions
from hpsearch.evaluation.deployed import DeployedModel
from hpsearch.evaluation.export import export_model, exported_model
from hpsearch.evaluation.predict import predict_arrays
from hpsearch.rundir import PROBS_FILE, RunDir, read_trials
from hpsearch.training.inference import predict_proba

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def ensembled_run(made_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(made_run, run)
    build_ensembles(run, ["average", "vote", "stacking"], EnsembleOptions(top_k=3, tta=("flip", "scale")))
    return run


def digit_folder(folder, count: int = 12):
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.uint8(digits.images[i] * 255 / 16)).save(folder / f"{i}.png")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stacking+tta", "vote"])
def test_onnx_runtime_and_pytorch_agree_on_every_probability(ensembled_run, name, tmp_path):
    run = RunDir(ensembled_run)
    path = export_model(ensembled_run, name, "onnx", tmp_path / f"{name}.onnx")
    images = run.arrays("val").images[:64].transpose(0, 2, 3, 1)  # real images, as the file takes them
    module = exported_model(run, resolve_model(run, name))
    with torch.no_grad():
        expected = module(torch.from_numpy(np.ascontiguousarray(images))).numpy()
    got = DeployedModel(path).predict_proba(images)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_predict_with_the_exported_file_gives_the_run_directorys_classes(ensembled_run, tmp_path, capsys):
    folder = digit_folder(tmp_path / "images")
    chosen = resolve_model(RunDir(ensembled_run), "auto").name
    assert main(["export", str(ensembled_run), "--output", str(tmp_path / "model.onnx")]) == 0  # auto
    assert main(["predict", str(tmp_path / "model.onnx"), str(folder), "--output", str(tmp_path / "a.csv")]) == 0
    assert main(["predict", str(ensembled_run), str(folder), "--model", chosen, "--output",
                 str(tmp_path / "b.csv")]) == 0
    exported, direct = pd.read_csv(tmp_path / "a.csv", dtype={"class": str}), pd.read_csv(tmp_path / "b.csv",
                                                                                          dtype={"class": str})
    assert exported["class"].tolist() == direct["class"].tolist()
    columns = [c for c in direct.columns if c.startswith("p_")]
    np.testing.assert_allclose(exported[columns].to_numpy(), direct[columns].to_numpy(), atol=1e-4)
    shutil.move(ensembled_run, tmp_path / "gone")  # the file needs no run directory
    try:
        assert main(["predict", str(tmp_path / "model.onnx"), str(folder)]) == 0
    finally:
        shutil.move(tmp_path / "gone", ensembled_run)


@pytest.mark.slow
def test_torchscript_export_predicts_the_same(ensembled_run, tmp_path):
    run = RunDir(ensembled_run)
    images = run.arrays("val").images[:16].transpose(0, 2, 3, 1)
    onnx = DeployedModel(export_model(ensembled_run, "average", "onnx", tmp_path / "a.onnx"))
    script = DeployedModel(export_model(ensembled_run, "average", "torchscript", tmp_path / "a.pt"))
    assert not images.flags.writeable  # memory-mapped from the decoded-image cache
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "NumPy array is not writable" from torch
        scripted = script.predict_proba(images)
    np.testing.assert_allclose(onnx.predict_proba(images), scripted, atol=1e-4)
    assert script.classes == run.classes and script.image_size == run.image_shape[1]


@pytest.fixture(scope="module")
def zero_weight_run(made_run, tmp_path_factory):
    """A copy of the run whose worst trial's validation probabilities are confidently wrong: greedy selection
    never picks it, so its member in the greedy record has weight 0."""
    run_dir = tmp_path_factory.mktemp("zero") / "run"
    shutil.copytree(made_run, run_dir)
    trials = read_trials(run_dir)
    worst = trials.sort_values("val_acc")["trial_id"].iloc[0]
    probs_file = RunDir(run_dir).trial_model(worst).folder / PROBS_FILE
    probs = np.load(probs_file)
    wrong = np.full_like(probs, 0.01 / (probs.shape[1] - 1))
    wrong[np.arange(len(probs)), (RunDir(run_dir).arrays("val").labels + 1) % probs.shape[1]] = 0.99
    np.save(probs_file, wrong)
    build_ensembles(run_dir, ["greedy"], EnsembleOptions(top_k=3, tta=()))  # the plain probabilities only
    return run_dir


def test_members_of_weight_zero_are_not_run_and_not_exported(zero_weight_run, tmp_path, monkeypatch):
    run = RunDir(zero_weight_run)
    record = resolve_model(run, "greedy")
    assert 0 < len(record.used_members()) < len(record.members)
    module = exported_model(run, record)
    assert len(module.members) == len(record.used_members())
    val = run.arrays("val")
    images = np.ascontiguousarray(val.images[:24])
    # the reference: every member run, zero weights included, then the record's combination and temperature
    arrays = ImageArrays(images, val.labels[:24])
    stack = np.stack([run.predict(m, arrays) for m in record_models(run, record)])
    expected = scale_probabilities(ensemble_combiner(run, record, val.labels)(stack), record.temperature)
    runs = []

    def counted(model, *args, **kwargs):
        runs.append(model)
        return predict_proba(model, *args, **kwargs)

    monkeypatch.setattr(evaluate_module, "predict_proba", counted)
    table = predict_arrays(zero_weight_run, images.transpose(0, 2, 3, 1), "greedy")
    assert len(runs) == len(record.used_members())  # the member of weight 0 is never run
    np.testing.assert_allclose(table[[f"p_{c}" for c in run.classes]].to_numpy(), expected, atol=1e-5)
    deployed = DeployedModel(export_model(zero_weight_run, "greedy", "onnx", tmp_path / "greedy.onnx"))
    np.testing.assert_allclose(deployed.predict_proba(images.transpose(0, 2, 3, 1)), expected, atol=1e-4, rtol=0)


def test_bad_export_requests_are_one_line(ensembled_run, tmp_path, capsys):
    for argv, fragment in (
        (["export", str(ensembled_run), "--model", "median"], "No ensemble 'median'"),
        (["export", str(ensembled_run), "--format", "tflite"], "--format must be one of onnx, torchscript"),
        (["export", str(ensembled_run), "--output", str(tmp_path)], "--output names a folder"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert fragment in err and "Traceback" not in err


@pytest.mark.parametrize("content", [b"", b"not a model at all" * 10])
def test_a_corrupt_or_foreign_model_file_is_a_clear_error(tmp_path, capsys, content):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(content)
    folder = digit_folder(tmp_path / "images", 2)
    assert main(["predict", str(bad), str(folder)]) == 2
    err = capsys.readouterr().err
    assert "is damaged or not a model written by `hpsearch export`" in err and "Traceback" not in err


def test_an_export_that_fails_leaves_no_half_written_file(ensembled_run, tmp_path, monkeypatch):
    import hpsearch.evaluation.export as export_module

    def broken(module, example, path, meta):
        path.write_bytes(b"half a graph")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "write_onnx", broken)
    target = tmp_path / "out" / "model.onnx"
    with pytest.raises(OSError):
        export_model(ensembled_run, "average", "onnx", target)
    assert not target.exists() and list(target.parent.iterdir()) == []
