"""Ensembles of search trials, built from their saved validation predictions and weights.

Probability-level methods follow scikit-learn's estimator contract on stacks of shape
(n_models, n_samples, n_classes); soups work on state dicts. This package never imports Ray or Optuna.
"""

from ensembles.averaging import HardVoting, SingleModel, SoftVoting
from ensembles.bagging import Bagging, bootstrap_indices
from ensembles.base import LOG_LOSS_CLIP, ProbaEnsemble, check_stack, log_loss
from ensembles.boosting import AdaBoostSAMME, samme_step
from ensembles.calibration import TemperatureScaling, scale_probabilities
from ensembles.greedy import GreedySelection
from ensembles.oof import OutOfFoldChoice, cross_val_proba, fold_splitter, stratified_folds
from ensembles.soup import SoupResult, average_state_dicts, greedy_selection, greedy_soup, uniform_soup
from ensembles.stacking import Stacking, stack_features
from ensembles.torch_modules import Temperature, as_torch

__all__ = [
    "LOG_LOSS_CLIP", "AdaBoostSAMME", "Bagging", "GreedySelection", "HardVoting", "OutOfFoldChoice", "ProbaEnsemble",
    "SoftVoting", "SingleModel", "SoupResult", "Stacking", "Temperature", "TemperatureScaling", "as_torch",
    "average_state_dicts", "bootstrap_indices", "check_stack", "cross_val_proba", "fold_splitter", "greedy_selection",
    "greedy_soup", "log_loss", "samme_step", "scale_probabilities", "stack_features", "stratified_folds",
    "uniform_soup",
]
