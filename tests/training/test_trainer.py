from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hpsearch.errors import RecipeError
from hpsearch.training import NonFiniteLoss, Trainer, TrialConfig, train_trial

FAST = TrialConfig(backbone="tutorial_cnn", lr=1e-2, batch_size=32, epochs=3, warmup_epochs=0.5, patience=5,
                   flip=False, aug_strength=0.5, drop_rate=0.1)


def test_one_trial_learns_and_keeps_the_best_epoch(tiny_data):
    seen = []
    outcome = train_trial(FAST, tiny_data, on_epoch=lambda m, best: seen.append((m, best)))
    assert [m["epoch"] for m, _ in seen] == [1, 2, 3]
    for metrics, _ in seen:
        assert set(metrics) >= {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "best_val_acc"}
    best = outcome.best
    assert best.val_acc == max(m["val_acc"] for m, _ in seen) and best.val_acc > 0.5
    assert seen[best.epoch - 1][1] is best  # the callback got the best state exactly when it improved
    assert best.val_probs.shape == (200, 10)
    np.testing.assert_allclose(best.val_probs.sum(1), 1.0, rtol=1e-5)
    assert np.isclose((best.val_probs.argmax(1) == tiny_data.val.labels).mean(), best.val_acc)


def test_same_seed_same_result(tiny_data):
    a = train_trial(FAST, tiny_data)
    b = train_trial(FAST, tiny_data)
    np.testing.assert_array_equal(a.best.val_probs, b.best.val_probs)
    c = train_trial(dataclasses.replace(FAST, seed=1), tiny_data)
    assert not np.array_equal(a.best.val_probs, c.best.val_probs)


def test_best_weights_reproduce_the_best_val_probs(tiny_data):
    from hpsearch.models import create_model
    from hpsearch.training import Normalizer, predict_proba

    outcome = train_trial(FAST, tiny_data)
    model = create_model("tutorial_cnn", 10, in_chans=1, img_size=8)
    model.load_state_dict(outcome.best.state_dict)
    probs = predict_proba(model, tiny_data.val, Normalizer((0.0,), (1.0,)), 64, torch.device("cpu"))
    np.testing.assert_allclose(probs, outcome.best.val_probs, atol=1e-5)


def test_patience_stops_a_trial_that_stops_improving(tiny_data):
    config = dataclasses.replace(FAST, lr=1e-7, warmup_epochs=0, epochs=30, patience=2)
    outcome = train_trial(config, tiny_data)
    assert outcome.stop_reason == "patience"
    assert len(outcome.history) == outcome.best.epoch + 2 < 30
    assert outcome.history[-1]["stopped_by_patience"]


def test_regularizers_mixup_l1_and_sgd_run(tiny_data):
    config = dataclasses.replace(FAST, epochs=1, mixup_alpha=0.2, cutmix_alpha=1.0, label_smoothing=0.1, l1=1e-5,
                                 optimizer="sgd", lr=0.05)
    outcome = train_trial(config, tiny_data)
    assert np.isfinite(outcome.history[0]["train_loss"])


def test_nan_loss_raises_a_clear_error(tiny_data):
    config = dataclasses.replace(FAST, lr=1e12, warmup_epochs=0, optimizer="sgd", epochs=3)
    with pytest.raises(NonFiniteLoss, match="lower train.lr"):
        train_trial(config, tiny_data)


def test_trial_config_rejects_unknown_and_out_of_range():
    with pytest.raises(RecipeError, match="Did you mean 'lr'"):
        TrialConfig.from_dict({"lrr": 0.1})
    with pytest.raises(RecipeError, match="label_smoothing"):
        TrialConfig.from_dict({"label_smoothing": 1.5})


def test_images_stored_larger_train_on_random_crops_and_predict_on_the_centre(tmp_path):
    from hpsearch.data import DataConfig, prepare_trial_data

    config = DataConfig(source="digits", image_size=16, crop_ratio=1.25, cache_dir=str(tmp_path / "cache"))
    data = prepare_trial_data(config, 0, tmp_path / "run")
    assert data.train.images.shape[-1] == 20 and data.image_size == 16 and data.crop == 16
    trainer = Trainer(TrialConfig(backbone="tutorial_cnn", epochs=1, batch_size=64, flip=False), data)
    outcome = trainer.fit()
    assert outcome.best.val_probs.shape == (len(data.val), 10) and outcome.best.val_acc > 0.2


def test_mixed_precision_is_off_on_the_cpu_unless_asked_and_bf16_when_asked(tiny_data):
    from hpsearch.training.precision import Precision

    cpu = torch.device("cpu")
    assert Precision(None, cpu).dtype is None and Precision(False, cpu).dtype is None
    assert Precision(True, cpu).dtype == torch.bfloat16 and Precision(True, cpu).scaler is None
    trainer = Trainer(dataclasses.replace(FAST, epochs=1, amp=True), tiny_data)
    outcome = trainer.fit()
    assert np.isfinite(outcome.history[-1]["train_loss"]) and "precision" in trainer.checkpoint()


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_it_in_hardware_is_kept_with_a_warning(native, monkeypatch, caplog):
    """On an x86 CPU without AVX512-BF16 or AMX, autocast emulates bfloat16: asked for, it stays on (the user asked),
    and the log says it may be slower than float32 and how to turn it off."""
    from hpsearch.training import precision

    for name in precision.NATIVE_CPU_BF16:
        monkeypatch.setattr(torch.cpu, name, lambda: False)
    if native:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    with caplog.at_level("WARNING", logger=precision.__name__):
        made = precision.Precision(True, torch.device("cpu"))
        precision.Precision(None, torch.device("cpu"))  # not asked for: off, nothing to say
    assert made.dtype == torch.bfloat16 and precision.cpu_has_native_bf16() == native
    warned = [r.getMessage() for r in caplog.records if r.name == precision.__name__]
    if native:
        assert warned == []
    else:
        assert len(warned) == 1 and "emulated" in warned[0] and "train.amp=false" in warned[0]


def test_a_trial_trains_in_nhwc_layout_unless_told_not_to_and_learns_the_same_in_both(tiny_data):
    def conv_weights(trainer: Trainer) -> list[torch.Tensor]:
        return [p for p in trainer.model.parameters() if p.dim() == 4]

    nhwc, nchw = Trainer(FAST, tiny_data), Trainer(dataclasses.replace(FAST, channels_last=False), tiny_data)
    nhwc_weights, nchw_weights = conv_weights(nhwc), conv_weights(nchw)  # a 1-channel kernel fits both layouts
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in nhwc_weights)
    assert any(not w.is_contiguous() for w in nhwc_weights)
    assert all(w.is_contiguous() for w in nchw_weights)
    assert any(not w.is_contiguous(memory_format=torch.channels_last) for w in nchw_weights)
    first, second = nhwc.fit(), nchw.fit()
    assert abs(first.best.val_acc - second.best.val_acc) <= 0.05  # the same arithmetic up to float rounding


def test_a_trial_continues_from_another_configs_checkpoint_with_its_own_hyperparameters(tiny_data):
    """PBT's exploit step at the trainer level: weights, optimizer moments, epoch counter and random state come
    from the donor; weight decay and the learning-rate schedule (at the restored step) are the new config's."""
    from hpsearch.training import Trainer

    donor = Trainer(dataclasses.replace(FAST, epochs=6, weight_decay=0.05), tiny_data)
    donor.fit(lambda metrics, best: metrics["epoch"] >= 2)  # stop after two epochs
    state = donor.checkpoint()
    new = dataclasses.replace(FAST, epochs=6, weight_decay=0.01, lr=FAST.lr * 0.8, aug_strength=0.9, seed=7)
    trainer = Trainer(new, tiny_data)
    trainer.restore(state, None)
    assert trainer.epoch == 2 and trainer.updates == donor.updates and len(trainer.history) == 2
    for name, tensor in donor.model.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], tensor), name
    moments = [s["exp_avg"] for s in trainer.optimizer.state.values()]
    donors = [s["exp_avg"] for s in donor.optimizer.state.values()]
    assert moments and all(torch.equal(a, b) for a, b in zip(moments, donors, strict=True))
    decays = {g["weight_decay"] for g in trainer.optimizer.param_groups}
    assert decays == {0.0, 0.01}  # biases and norms stay undecayed; the rest takes the new weight decay
    ratio = trainer.optimizer.param_groups[0]["lr"] / donor.optimizer.param_groups[0]["lr"]
    assert ratio == pytest.approx(0.8)  # the same point of the cosine schedule, scaled to the new lr
    assert trainer.augment.strength == 0.9
    outcome = trainer.fit()
    assert [m["epoch"] for m in outcome.history] == [1, 2, 3, 4, 5, 6]  # it went on from epoch 3


def test_restoring_its_own_checkpoint_changes_nothing(tiny_data):
    from hpsearch.training import Trainer

    config = dataclasses.replace(FAST, epochs=4)
    straight_trainer = Trainer(config, tiny_data)
    straight = straight_trainer.fit()
    first = Trainer(config, tiny_data)
    first.fit(lambda metrics, best: metrics["epoch"] >= 2)
    second = Trainer(config, tiny_data)
    second.restore(first.checkpoint(), first.best)
    resumed = second.fit()
    np.testing.assert_array_equal(resumed.best.val_probs, straight.best.val_probs)
    np.testing.assert_array_equal(second.epoch_choice.chosen_, straight_trainer.epoch_choice.chosen_)
    for views, probs in straight_trainer.epoch_choice_probs().items():
        np.testing.assert_array_equal(second.epoch_choice_probs()[views], probs)


def test_the_epoch_is_also_chosen_out_of_fold_with_and_without_test_time_views(tiny_data):
    from hpsearch.training import EPOCH_FOLDS, Normalizer, predict_proba

    trainer = Trainer(dataclasses.replace(FAST, epochs=5, lr=3e-3), tiny_data)
    epochs: dict[int, tuple[np.ndarray, dict]] = {}
    evaluate = trainer.evaluate

    def recording_evaluate():
        loss, acc, probs = evaluate()
        state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        epochs[trainer.epoch] = probs, state
        return loss, acc, probs

    trainer.evaluate = recording_evaluate
    trainer.fit()
    choice, y = trainer.epoch_choice, tiny_data.val.labels
    assert len(choice.chosen_) == EPOCH_FOLDS and trainer.views == ("shift",)  # FAST trains without flips
    model = trainer.model
    for fold, epoch in enumerate(choice.chosen_):
        rows = choice.fold == fold
        others = [int(((p.argmax(1) == y) & ~rows).sum()) for p, _ in epochs.values()]
        assert others[epoch - 1] == max(others)  # the best epoch on the other folds' images
        np.testing.assert_array_equal(trainer.epoch_choice_probs()[()][rows], epochs[epoch][0][rows])
        model.load_state_dict(epochs[epoch][1])
        shifted = predict_proba(model, tiny_data.val, Normalizer((0.0,), (1.0,)), 64, torch.device("cpu"),
                                ("shift",))
        np.testing.assert_allclose(trainer.epoch_choice_probs()[("shift",)][rows], shifted[rows], atol=1e-5)


def test_an_exploited_trial_chooses_its_epochs_afresh(tiny_data):
    donor = Trainer(dataclasses.replace(FAST, epochs=4), tiny_data)
    donor.fit(lambda metrics, best: metrics["epoch"] >= 2)
    assert set(donor.epoch_choice.chosen_) <= {1, 2}
    trainer = Trainer(dataclasses.replace(FAST, epochs=4, seed=3), tiny_data)
    trainer.restore(donor.checkpoint(), None)  # PBT's exploit: the donor's best epochs stay the donor's
    assert trainer.epoch_choice_probs() == {} and set(trainer.epoch_choice.chosen_) == {-1}
    trainer.fit()
    assert set(trainer.epoch_choice.chosen_) <= {3, 4}
