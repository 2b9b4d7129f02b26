"""Training of one configuration: knows nothing of Ray or Optuna."""

from hpsearch.training.config import TrialConfig
from hpsearch.training.inference import (
    TTA_VIEWS,
    BatchBuffer,
    Normalizer,
    default_tta_views,
    inference_layout,
    predict_proba,
    tta_cost,
    view_names,
)
from hpsearch.training.rng import RandomState, preserved_global_rng
from hpsearch.training.trainer import (
    EPOCH_FOLDS,
    BestState,
    Distillation,
    NonFiniteLoss,
    Trainer,
    TrialOutcome,
    train_trial,
)

__all__ = ["EPOCH_FOLDS", "TTA_VIEWS", "BatchBuffer", "BestState", "Distillation", "NonFiniteLoss", "Normalizer",
           "RandomState", "Trainer", "TrialConfig", "TrialOutcome", "default_tta_views", "inference_layout",
           "predict_proba", "preserved_global_rng", "train_trial", "tta_cost", "view_names"]
