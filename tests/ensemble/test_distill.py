"""`hpsearch distill`: a student trained on a teacher's soft targets becomes a model like any other."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from hpsearch.cli import main
from hpsearch.data import TestSplitKey
from hpsearch.ensemble import build_ensembles, distill_run
from hpsearch.ensemble.methods import EnsembleOptions
from hpsearch.evaluation import evaluate_run
from hpsearch.rundir import RunDir, epoch_oof_file
from hpsearch.training import Distillation


@pytest.fixture
def run(made_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(made_run, copy)
    return copy


def test_the_distillation_loss_mixes_the_teacher_and_the_labels():
    teacher = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    logits = torch.tensor([[2.0, 0.5, 0.1], [0.3, 0.2, 1.5]])
    labels_loss = torch.tensor(0.4)
    index = np.array([0, 1])
    assert Distillation(teacher, alpha=0.0).loss(logits, labels_loss, index, torch.device("cpu")) == labels_loss
    kl = Distillation(teacher, alpha=1.0, temperature=1.0).loss(logits, labels_loss, index, torch.device("cpu"))
    expected = torch.nn.functional.kl_div(torch.log_softmax(logits, 1), torch.from_numpy(teacher),
                                          reduction="batchmean")
    assert kl.item() == pytest.approx(expected.item(), rel=1e-4)
    same = Distillation(np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(1, keepdims=True), alpha=1.0)
    assert same.loss(logits, labels_loss, index, torch.device("cpu")).item() == pytest.approx(0.0, abs=1e-5)


def test_distill_needs_an_ensemble_first(run, capsys):
    assert main(["distill", str(run)]) == 2
    assert "run `hpsearch ensemble" in capsys.readouterr().err


def test_a_distilled_student_is_scored_evaluated_and_predicted_like_any_model(run):
    build_ensembles(run, ["average"], EnsembleOptions(top_k=3, tta=()))
    reads = TestSplitKey.reads
    record = distill_run(run, teacher="average", epochs=1)
    assert TestSplitKey.reads == reads  # the teacher's targets come from the training images only
    assert record.method == "distilled" and record.details["teacher"] == "average"
    opened = RunDir(run)
    student = opened.inside(record.model)
    assert (student / "model.pt").is_file() and record.val_accuracy_oof == record.val_accuracy  # one epoch
    assert (student / epoch_oof_file(())).is_file()  # its epoch chosen out of fold, as a trial's is
    table = opened.ensembles_table()
    assert "distilled" in set(table["model"]) and table["chosen"].sum() == 1
    metrics = evaluate_run(run).set_index("model")
    assert "distilled" in metrics.index and metrics.loc["distilled", "members"] == 1
    assert metrics.loc["distilled", "parameters"] == metrics.loc["best_single", "parameters"]  # the same network


def test_a_student_of_another_backbone_and_bad_settings(run, capsys):
    build_ensembles(run, ["average"], EnsembleOptions(top_k=3, tta=()))
    record = distill_run(run, teacher="average", student="resnet10t", epochs=1)
    assert RunDir(run).member_model(record.members[0]).config.backbone == "resnet10t"
    assert main(["distill", str(run), "--alpha", "1.5"]) == 2
    assert "--alpha must be in [0, 1]" in capsys.readouterr().err
