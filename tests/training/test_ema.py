"""``train.ema_decay``: the trainer validates and keeps an exponential moving average of its weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ensembles import log_loss
from hpsearch.errors import RecipeError
from hpsearch.models import create_model
from hpsearch.training import Normalizer, Trainer, TrialConfig, predict_proba
from hpsearch.training.trainer import EMA_WARMUP_POWER
from tests.training.test_trainer import FAST

EMA = dataclasses.replace(FAST, ema_decay=0.9)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_the_average_follows_the_warm_up_rule_and_leaves_the_training_path_alone(tiny_data):
    trainer = Trainer(EMA, tiny_data)
    name = next(k for k, v in trainer.model.state_dict().items() if v.ndim == 4)  # the first conv kernel
    seen: list[torch.Tensor] = []
    trainer.optimizer.register_step_post_hook(lambda *_: seen.append(trainer.model.state_dict()[name].clone()))
    trainer.fit()
    average = seen[0]
    for update, weight in enumerate(seen[1:], start=2):  # timm ModelEmaV3: decay 1 - update^-p, capped, 0 at first
        decay = min(1 - update ** -EMA_WARMUP_POWER, EMA.ema_decay)
        average = decay * average + (1 - decay) * weight
    assert len(seen) == trainer.updates > 10
    torch.testing.assert_close(trainer.evaluated.state_dict()[name], average, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(trainer.evaluated.state_dict()[name], trainer.model.state_dict()[name])
    plain = Trainer(FAST, tiny_data)
    plain.fit()
    for key, value in plain.model.state_dict().items():  # averaging reads the weights and draws no random numbers
        assert torch.equal(trainer.model.state_dict()[key], value), key


def recorded_epochs(trainer: Trainer) -> dict[int, dict[str, torch.Tensor]]:
    """The averaged weights at every validation, by epoch (filled while ``trainer`` fits)."""
    epochs: dict[int, dict[str, torch.Tensor]] = {}
    evaluate = trainer.evaluate

    def recording_evaluate():
        epochs[trainer.epoch] = weights(trainer.ema.module)
        return evaluate()

    trainer.evaluate = recording_evaluate
    return epochs


def predictions(state: dict[str, torch.Tensor], data, views: tuple[str, ...] = ()) -> np.ndarray:
    model = create_model("tutorial_cnn", 10, in_chans=1, img_size=8)
    model.load_state_dict(state)
    return predict_proba(model, data.val, Normalizer((0.0,), (1.0,)), 64, torch.device("cpu"), views)


def test_validation_scores_and_the_best_epoch_keeps_the_average(tiny_data):
    trainer = Trainer(dataclasses.replace(EMA, epochs=3), tiny_data)
    epochs = recorded_epochs(trainer)
    outcome = trainer.fit()
    for metrics in outcome.history:
        averaged = predictions(epochs[metrics["epoch"]], tiny_data)
        assert metrics["val_loss"] == pytest.approx(log_loss(averaged, tiny_data.val.labels), rel=1e-5)
    np.testing.assert_allclose(outcome.best.val_probs, predictions(epochs[outcome.best.epoch], tiny_data), atol=1e-5)
    for key, value in outcome.best.state_dict.items():
        assert torch.equal(value, epochs[outcome.best.epoch][key]), key
    raw = predictions(weights(trainer.model), tiny_data)
    assert not np.allclose(raw, predictions(epochs[3], tiny_data), atol=1e-3)  # the average is not the weights


def test_the_out_of_fold_epoch_choice_predicts_with_the_average(tiny_data):
    trainer = Trainer(dataclasses.replace(EMA, epochs=4), tiny_data)
    epochs = recorded_epochs(trainer)
    trainer.fit()
    choice = trainer.epoch_choice
    for fold, epoch in enumerate(choice.chosen_):
        rows = choice.fold == fold
        np.testing.assert_allclose(trainer.epoch_choice_probs()[()][rows],
                                   predictions(epochs[epoch], tiny_data)[rows], atol=1e-5)
        np.testing.assert_allclose(trainer.epoch_choice_probs()[trainer.views][rows],
                                   predictions(epochs[epoch], tiny_data, trainer.views)[rows], atol=1e-5)


def test_a_resumed_run_continues_the_same_average(tiny_data):
    config = dataclasses.replace(EMA, epochs=4)
    straight = Trainer(config, tiny_data)
    straight.fit()
    first = Trainer(config, tiny_data)
    first.fit(lambda metrics, best: metrics["epoch"] >= 2)
    second = Trainer(config, tiny_data)
    second.restore(first.checkpoint(), first.best)
    second.fit()
    for key, value in straight.evaluated.state_dict().items():
        assert torch.equal(second.evaluated.state_dict()[key], value), key


def test_an_exploited_trial_takes_its_donors_average_or_starts_one_from_its_weights(tiny_data):
    donor = Trainer(dataclasses.replace(EMA, epochs=4), tiny_data)
    donor.fit(lambda metrics, best: metrics["epoch"] >= 2)
    recipient = Trainer(dataclasses.replace(EMA, epochs=4, seed=3, lr=5e-3), tiny_data)
    recipient.restore(donor.checkpoint(), None)
    for key, value in weights(donor.evaluated).items():
        assert torch.equal(recipient.evaluated.state_dict()[key], value), key
    plain_donor = Trainer(dataclasses.replace(FAST, epochs=4), tiny_data)
    plain_donor.fit(lambda metrics, best: metrics["epoch"] >= 1)
    assert plain_donor.checkpoint()["ema"] is None
    recipient = Trainer(dataclasses.replace(EMA, epochs=4, seed=3), tiny_data)
    recipient.restore(plain_donor.checkpoint(), None)
    for key, value in weights(plain_donor.model).items():
        assert torch.equal(recipient.evaluated.state_dict()[key], value), key


def test_load_weights_sets_the_weights_and_their_average(tiny_data):
    trainer = Trainer(EMA, tiny_data)
    other = Trainer(dataclasses.replace(EMA, seed=5), tiny_data)
    trainer.load_weights(other.model.state_dict())
    for key, value in other.model.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[key], value) and torch.equal(trainer.evaluated.state_dict()[key],
                                                                                     value), key


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_an_out_of_range_decay_is_a_recipe_error_naming_it(bad):
    with pytest.raises(RecipeError, match=rf"train.ema_decay is out of range: got ema_decay={bad}"):
        TrialConfig.from_dict({"ema_decay": bad}).validate()
