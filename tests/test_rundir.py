"""The ranking rule and the origin of rows, as the run-directory contract defines them."""

from __future__ import annotations

import pandas as pd

from hpsearch.rundir import (
    HISTORY_FILE,
    TRIALS_FILE,
    feasible,
    from_elsewhere,
    rank_trials,
    read_history,
    read_trials,
    write_table,
)


def test_feasible_trials_rank_first_then_accuracy_then_loss():
    trials = pd.DataFrame({"trial_id": ["fast", "slow", "tie", "unknown"], "val_acc": [0.8, 0.95, 0.8, 0.7],
                           "val_loss": [0.5, 0.1, 0.4, 0.6], "feasible": [True, False, True, None]})
    assert rank_trials(trials)["trial_id"].tolist() == ["tie", "fast", "unknown", "slow"]
    assert rank_trials(trials.drop(columns="feasible"))["trial_id"].tolist() == ["slow", "tie", "fast", "unknown"]


def test_feasible_reads_the_column_as_written_to_and_read_from_csv():
    written = pd.DataFrame({"feasible": ["True", "False", "", "false"]}).replace("", None)
    assert feasible(written).tolist() == [True, False, True, False]
    assert feasible(pd.DataFrame({"val_acc": [0.5]})).tolist() == [True]


def test_rows_from_a_warm_start_are_told_apart():
    trials = pd.DataFrame({"origin": ["search", "default", "warm_start:/runs/a", None]})
    assert from_elsewhere(trials).tolist() == [False, False, True, False]
    assert from_elsewhere(pd.DataFrame({"trial_id": ["a"]})).tolist() == [False]


def test_identifiers_that_look_like_numbers_stay_strings(tmp_path):
    # Ray's trial ids are 8 hex digits: "6172e946" parses as a float and "00012345" as an integer
    trials = pd.DataFrame({"trial_id": ["6172e946", "00012345"], "optuna_trial": [0, 1], "status": ["completed"] * 2,
                           "val_acc": [0.5, 0.6], "val_loss": [1.0, 0.9]})
    write_table(tmp_path / TRIALS_FILE, trials)
    assert read_trials(tmp_path)["trial_id"].tolist() == ["6172e946", "00012345"]
    history = trials.assign(epoch=1, train_acc=0.5)[["trial_id", "epoch", "val_acc", "val_loss", "train_acc"]]
    write_table(tmp_path / HISTORY_FILE, history.iloc[:1])  # a run of one trial, as in a CI failure
    assert read_history(tmp_path)["trial_id"].tolist() == ["6172e946"]


def test_new_weights_in_a_model_folder_drop_the_probabilities_cached_for_the_old_ones(tmp_path):
    import numpy as np
    import torch

    from hpsearch.rundir import SavedModel, epoch_oof_file, save_model_folder, tta_probs_file
    from hpsearch.training import BestState, TrialConfig

    probs = np.full((4, 2), 0.5, dtype=np.float32)
    best = BestState(1, 0.5, 0.7, 0.5, 0.7, {"w": torch.zeros(1)}, probs)
    config = TrialConfig(backbone="tutorial_cnn")
    for stale in (tta_probs_file(("flip",)), epoch_oof_file(("shift",)), epoch_oof_file(())):
        np.save(tmp_path / stale, probs)
    save_model_folder(tmp_path, best, config, None, (0.0,), (1.0,), {(): probs * 0 + 0.25, ("flip",): probs})
    kept = sorted(p.name for p in tmp_path.glob("val_probs_*"))
    assert kept == sorted([epoch_oof_file(()), epoch_oof_file(("flip",))])  # the stale three are gone
    saved = SavedModel("m", tmp_path)
    np.testing.assert_array_equal(saved.epoch_oof_probs(()), probs * 0 + 0.25)
    assert saved.epoch_oof_probs(("shift",)) is None


def test_a_saved_model_is_built_for_inference_in_nhwc_layout_with_its_weights(tmp_path):
    import numpy as np
    import torch

    from hpsearch.models import create_model
    from hpsearch.rundir import SavedModel, save_model_folder
    from hpsearch.training import BestState, TrialConfig

    torch.manual_seed(0)
    state = create_model("tutorial_cnn", 3, 3, 16).state_dict()
    best = BestState(1, 0.5, 0.7, 0.5, 0.7, state, np.full((4, 3), 1 / 3, dtype=np.float32))
    save_model_folder(tmp_path, best, TrialConfig(backbone="tutorial_cnn"), None, (0.5,) * 3, (0.5,) * 3)
    model = SavedModel("m", tmp_path).build(3, 3, 16)
    assert not model.training
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, state[name])
        if value.dim() == 4:
            assert value.is_contiguous(memory_format=torch.channels_last) and not value.is_contiguous()
