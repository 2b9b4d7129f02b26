"""Training of one configuration: knows nothing of Ray or Optuna."""

from hpsearch.training.config import TrialConfig
from hpsearch.training.rng import RandomState, preserved_global_rng
from hpsearch.training.trainer import (
                                       BestState,
                                       NonFiniteLoss,
                                       Normalizer,
                                       Trainer,
                                       TrialOutcome,
                                       predict_proba,
                                       train_trial,
)

__all__ = ["BestState", "NonFiniteLoss", "Normalizer", "RandomState", "Trainer", "TrialConfig", "TrialOutcome",
           "predict_proba", "preserved_global_rng", "train_trial"]
