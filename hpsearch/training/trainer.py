"""One training run, unaware of Ray and Optuna: epochs in, per-epoch metrics and the best state out.

The best epoch is the one with the best validation score, so that score is a maximum over epochs and overstates
what the kept weights do on new images. ``Trainer`` also makes the epoch choice out of fold
(``ensembles.OutOfFoldChoice``): each of ``EPOCH_FOLDS`` folds of the validation images is predicted by the epoch
that scored best on the other folds, with and without the model's default test-time views. ``hpsearch ensemble``
ranks the model by those probabilities.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch import nn

from ensembles import OutOfFoldChoice, log_loss
from hpsearch.data import BatchAugment, ImageArrays, TrialData
from hpsearch.models import (
    apply_frozen_mode,
    check_frozen_blocks,
    check_input_size,
    count_parameters,
    create_model,
    set_trainable,
)
from hpsearch.models.cost import ms_per_image
from hpsearch.training.config import TrialConfig
from hpsearch.training.inference import BatchBuffer, Normalizer, default_tta_views, predict_proba
from hpsearch.training.parallel import DataParallel
from hpsearch.training.precision import Precision
from hpsearch.training.prefetch import CudaPrefetcher, device_batches
from hpsearch.training.rng import RandomState

EPOCH_FOLDS = 5  # folds of the validation images for the out-of-fold choice of the best epoch
EMA_WARMUP_POWER = 0.75  # ModelEmaV3's advice for runs under about a million updates (its default 2/3: longer)


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; the trial cannot continue."""


@dataclass
class BestState:
    """The best epoch so far: its metrics, weights (on CPU) and validation class probabilities."""

    epoch: int
    val_acc: float
    val_loss: float
    train_acc: float
    train_loss: float
    state_dict: dict[str, torch.Tensor]
    val_probs: np.ndarray

    def beats(self, val_acc: float, val_loss: float) -> bool:
        return val_acc > self.val_acc or (val_acc == self.val_acc and val_loss < self.val_loss)


@dataclass
class TrialOutcome:
    best: BestState
    history: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "max_epochs"


EpochCallback = Callable[[dict[str, Any], "BestState | None"], "bool | None"]  # True: stop after this epoch


@dataclass
class Distillation:
    """Knowledge distillation (Hinton et al., 2015): ``teacher`` holds a teacher's class probabilities for every
    training image (in the order of ``data.train``). The loss is ``alpha`` times the KL divergence between the
    teacher's and the student's distributions, both softened by ``temperature`` (times its square, which keeps
    the gradients' scale), plus ``1 - alpha`` times the usual loss on the labels."""

    teacher: np.ndarray
    alpha: float = 0.7
    temperature: float = 2.0

    def loss(self, logits: torch.Tensor, label_loss: torch.Tensor, index: np.ndarray,
             device: torch.device) -> torch.Tensor:
        teacher = torch.from_numpy(self.teacher[index]).to(device, torch.float32)
        soft_teacher = torch.softmax(torch.log(teacher.clamp_min(1e-8)) / self.temperature, dim=1)
        student = torch.log_softmax(logits / self.temperature, dim=1)
        kl = torch.nn.functional.kl_div(student, soft_teacher, reduction="batchmean")
        return self.alpha * self.temperature ** 2 * kl + (1.0 - self.alpha) * label_loss


MeanStd = tuple[tuple[float, ...], tuple[float, ...]]


def resolve_mean_std(data: TrialData, model: nn.Module, pretrained: bool) -> MeanStd:
    """``normalize="auto"`` with pretrained weights uses the backbone's own mean/std; else the data's."""
    if data.normalize != "auto" or not pretrained:
        return data.mean, data.std
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean, std = tuple(cfg.get("mean", (0.0,))), tuple(cfg.get("std", (1.0,)))
    if len(mean) != data.in_chans:
        mean, std = (sum(mean) / len(mean),) * data.in_chans, (sum(std) / len(std),) * data.in_chans
    return mean, std


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of absolute weights of conv and linear kernels (biases and norms excluded)."""
    return sum(p.abs().sum() for p in model.parameters() if p.ndim > 1 and p.requires_grad)


class Trainer:
    """Trains ``config`` on ``data``; ``fit`` calls ``on_epoch(metrics, best_or_None)`` after every epoch.

    Everything a run needs to continue exactly where it stopped (weights and their moving average, optimizer,
    schedule, epoch, best epoch so far, history, random state) comes out of ``checkpoint()`` and goes back in
    with ``restore()``.
    Threads are the caller's to set (``torch.set_num_threads``); the trainer changes no global state.
    With ``parallel``, this process is one worker of a data-parallel trial (see ``hpsearch.training.parallel``).
    """

    def __init__(self, config: TrialConfig, data: TrialData, device: str | torch.device | None = None,
                 distill: Distillation | None = None, parallel: DataParallel | None = None):
        if distill is not None and (config.mixup_alpha > 0 or config.cutmix_alpha > 0):
            raise ValueError("distillation targets are per image: train the student without mixup or cutmix")
        if parallel is not None:
            parallel.check_batch(config.batch_size, pairs=config.mixup_alpha > 0 or config.cutmix_alpha > 0)
        self.config, self.data, self.distill, self.parallel = config, data, distill, parallel
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.random = RandomState(config.seed, cuda=self.device.type == "cuda")
        with self.random:
            self.model = create_model(
                config.backbone, num_classes=len(data.classes), in_chans=data.in_chans, img_size=data.image_size,
                drop_rate=config.drop_rate, drop_path_rate=config.drop_path_rate, pretrained=config.pretrained,
                weights=config.weights,
            )
        check_input_size(self.model, config.backbone, data.in_chans, data.image_size)
        check_frozen_blocks(self.model, config.frozen_blocks)
        self.memory_format = torch.contiguous_format if config.channels_last is False else torch.channels_last
        self.model.to(self.device, memory_format=self.memory_format)
        self.precision = Precision(config.amp, self.device)
        self.network = torch.compile(self.model) if config.compile else self.model  # what the steps call
        self.ema = (ModelEmaV3(self.model, decay=config.ema_decay, use_warmup=True, warmup_power=EMA_WARMUP_POWER)
                    if config.ema_decay > 0 else None)
        self._wrapped_for: tuple[bool, ...] | None = None  # the trainable parameters DDP was built for
        self.mean, self.std = resolve_mean_std(data, self.model, config.pretrained)
        self.normalize = Normalizer(self.mean, self.std).to(self.device)
        self.augment = BatchAugment(config.flip, config.rotation, config.zoom, config.translate, config.aug_strength,
                                    crop=data.crop)
        self.steps_per_epoch = max(1, len(data.train) // config.batch_size)
        if config.steps_per_epoch is not None:  # datasets too large for a full pass per epoch
            self.steps_per_epoch = min(self.steps_per_epoch, config.steps_per_epoch)
        self.optimizer = create_optimizer_v2(self.model, opt=config.optimizer, lr=config.lr,
                                             weight_decay=config.weight_decay, momentum=config.momentum,
                                             layer_decay=config.layer_decay)
        total = config.epochs * self.steps_per_epoch
        self.scheduler = CosineLRScheduler(
            self.optimizer, t_initial=total, lr_min=config.lr * 1e-2,
            warmup_t=int(config.warmup_epochs * self.steps_per_epoch), warmup_lr_init=config.lr * 1e-2,
            warmup_prefix=True, t_in_epochs=False,
        )
        self.mixup = self._make_mixup()
        self.criterion = (SoftTargetCrossEntropy() if self.mixup
                          else nn.CrossEntropyLoss(label_smoothing=config.label_smoothing))
        self.buffer = BatchBuffer()
        self.prefetcher = CudaPrefetcher(self.device) if self.device.type == "cuda" else None
        self.updates = 0
        self.epoch = 0  # epochs finished
        self.best: BestState | None = None
        self.history: list[dict[str, Any]] = []
        self.views = default_tta_views(config.flip)  # the test-time views of the out-of-fold epoch choice
        self.epoch_choice = OutOfFoldChoice(data.val.labels, EPOCH_FOLDS, config.seed)
        self.epoch_choice_views: np.ndarray | None = None  # its probabilities with ``views``

    def _make_mixup(self) -> Mixup | None:
        cfg = self.config
        if cfg.mixup_alpha <= 0 and cfg.cutmix_alpha <= 0:
            return None
        return Mixup(mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha, label_smoothing=cfg.label_smoothing,
                     num_classes=len(self.data.classes))

    def _distributed_network(self) -> None:
        """Under data parallelism, (re)build the DDP wrapper whenever the set of trainable parameters changed
        (DDP registers the parameters that require gradients when it is built)."""
        trainable = tuple(p.requires_grad for p in self.model.parameters())
        if self.parallel is None or trainable == self._wrapped_for:
            return
        wrapped = self.parallel.wrap(self.model, self.device)
        self.network = torch.compile(wrapped) if self.config.compile else wrapped
        self._wrapped_for = trainable

    def _check_loss(self, loss: torch.Tensor) -> None:
        bad = not bool(torch.isfinite(loss))
        if self.parallel is not None:  # every worker must stop together, or the others wait forever
            bad = self.parallel.any(bad)
        if bad:
            raise NonFiniteLoss(f"training loss became {loss.item()} at update {self.updates}; "
                                f"lower train.lr (now {self.config.lr:g}) or check the data")

    def train_epoch(self) -> tuple[float, float]:
        """One pass over the shuffled training set (last partial batch dropped); mean loss and accuracy (over all
        workers of a data-parallel trial)."""
        self.model.train()
        apply_frozen_mode(self.model)
        self._distributed_network()
        images, labels = self.data.train.images, self.data.train.labels
        order = torch.randperm(len(labels), generator=self.random.batches).numpy()
        bs, total_loss, correct, seen = self.config.batch_size, 0.0, 0, 0
        indices = [np.sort(order[step * bs:(step + 1) * bs]) for step in range(self.steps_per_epoch)]
        if self.parallel is not None:
            indices = [self.parallel.shard(index) for index in indices]
        batches = device_batches(images, indices, self.device, self.buffer, self.prefetcher)
        for index, batch in zip(indices, batches, strict=True):
            x = self.augment(batch, self.random.batches)
            x = self.normalize.apply_(x).contiguous(memory_format=self.memory_format)
            y = torch.from_numpy(labels[index]).to(self.device)
            target = y
            if self.mixup is not None:
                x, target = self.mixup(x, y)
            with self.precision.autocast():
                logits = self.network(x)
                loss = self.criterion(logits.float(), target)
            if self.distill is not None:
                loss = self.distill.loss(logits.float(), loss, index, self.device)
            if self.config.l1 > 0:
                loss = loss + self.config.l1 * l1_penalty(self.model)
            self._check_loss(loss)
            self.precision.step(loss, self.optimizer)
            self.updates += 1
            if self.ema is not None:
                self.ema.update(self.model, step=self.updates)
            self.scheduler.step_update(self.updates)
            total_loss += loss.item() * len(index)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(index)
        if self.parallel is not None:
            total_loss, correct, seen = self.parallel.sum(total_loss, correct, seen)
        return total_loss / seen, correct / seen

    @property
    def evaluated(self) -> nn.Module:
        """The network that validation scores and that every kept copy holds: the weights' moving average under
        ``ema_decay``, else the trained network itself."""
        return self.model if self.ema is None else self.ema.module

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Continue from (or predict with) ``state_dict``: the trained weights and their average both become it."""
        self.model.load_state_dict(state_dict)
        if self.ema is not None:
            self.ema.module.load_state_dict(state_dict)

    def predict(self, arrays: ImageArrays) -> np.ndarray:
        """Class probabilities of ``arrays`` under the current (evaluated) weights."""
        return predict_proba(self.evaluated, arrays, self.normalize, self.config.eval_batch_size, self.device,
                             crop=self.data.crop)

    def evaluate(self) -> tuple[float, float, np.ndarray]:
        probs = self.predict(self.data.val)
        labels = self.data.val.labels
        return log_loss(probs, labels), float((probs.argmax(1) == labels).mean()), probs

    def _train_next_epoch(self) -> dict[str, Any]:
        """Train one more epoch (with the layers this epoch trains); its training metrics and learning rate."""
        self.epoch += 1
        set_trainable(self.model, head_only=self.epoch <= self.config.freeze_epochs,
                      frozen_blocks=self.config.frozen_blocks)
        lr = max(group["lr"] for group in self.optimizer.param_groups)  # the head's, under layer_decay
        with self.random:
            train_loss, train_acc = self.train_epoch()
        return {"epoch": self.epoch, "train_loss": train_loss, "train_acc": train_acc, "lr": lr}

    def run_epoch(self) -> tuple[dict[str, Any], bool]:
        """Train and validate one more epoch; return its metrics and whether it is the best so far."""
        start = time.perf_counter()
        trained = self._train_next_epoch()
        train_loss, train_acc, lr = trained["train_loss"], trained["train_acc"], trained["lr"]
        val_loss, val_acc, val_probs = self.evaluate()
        self.choose_epoch_out_of_fold(val_probs)
        improved = self.best is None or self.best.beats(val_acc, val_loss)
        if improved:
            self.best = BestState(self.epoch, val_acc, val_loss, train_acc, train_loss, self.cpu_weights(), val_probs)
        patience_hit = self.epoch - self.best.epoch >= self.config.patience and self.epoch < self.config.epochs
        metrics = {
            "epoch": self.epoch, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
            "val_acc": val_acc, "lr": lr, "best_val_acc": self.best.val_acc, "best_epoch": self.best.epoch,
            "epoch_seconds": time.perf_counter() - start, "stopped_by_patience": patience_hit,
        }
        self.history.append(metrics)
        return metrics, improved

    def train_without_validation(self, epochs: int) -> dict[str, torch.Tensor]:
        """Train up to epoch ``epochs`` of the configuration's schedule and return the weights after it (on the
        CPU), never validating: for a refit, whose validation images are among its training images and whose
        epoch count validation chose before."""
        if not 0 < epochs <= self.config.epochs:
            raise ValueError(f"epochs must be in 1..{self.config.epochs} (the schedule's length), got {epochs}")
        while self.epoch < epochs:
            start = time.perf_counter()
            self.history.append({**self._train_next_epoch(), "epoch_seconds": time.perf_counter() - start})
        return self.cpu_weights()

    def cpu_weights(self) -> dict[str, torch.Tensor]:
        """A copy of the current (evaluated) weights on the CPU (they outlive the next update)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.evaluated.state_dict().items()}

    def choose_epoch_out_of_fold(self, val_probs: np.ndarray) -> None:
        """Offer this epoch to the out-of-fold choice; where a fold switches to it, predict that fold's images
        in the test-time views too (only then: the mirror costs one more pass over those images)."""
        rows = self.epoch_choice.update(self.epoch, val_probs)
        if self.epoch_choice_views is None:
            self.epoch_choice_views = np.zeros_like(val_probs, dtype=np.float32)
        if len(rows):
            val = self.data.val
            self.epoch_choice_views[rows] = predict_proba(
                self.evaluated, ImageArrays(val.images[rows], val.labels[rows]), self.normalize,
                self.config.eval_batch_size, self.device, self.views, crop=self.data.crop, plain=val_probs[rows])

    def epoch_choice_probs(self) -> dict[tuple[str, ...], np.ndarray]:
        """The out-of-fold epoch choice's validation probabilities: plain (key ``()``) and with ``views``."""
        if self.epoch_choice.oof_ is None or self.epoch_choice_views is None:
            return {}
        return {(): self.epoch_choice.oof_, self.views: self.epoch_choice_views}

    def fit(self, on_epoch: EpochCallback | None = None) -> TrialOutcome:
        """Train the remaining epochs (all of them, or those after a restored checkpoint); ``on_epoch`` returning
        True stops the run after that epoch."""
        stop_reason = "max_epochs"
        while self.epoch < self.config.epochs:
            if self.history and self.history[-1]["stopped_by_patience"]:
                stop_reason = "patience"
                break
            metrics, improved = self.run_epoch()
            if on_epoch is not None and on_epoch(metrics, self.best if improved else None):
                stop_reason = "stopped"
                break
            if metrics["stopped_by_patience"]:
                stop_reason = "patience"
                break
        assert self.best is not None
        return TrialOutcome(self.best, list(self.history), stop_reason)

    def checkpoint(self) -> dict[str, Any]:
        """The state to continue from (the best epoch's weights and predictions travel separately)."""
        return {"epoch": self.epoch, "updates": self.updates, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "random": self.random.state_dict(), "history": list(self.history), "config": self.config.to_dict(),
                "precision": self.precision.state_dict(), "epoch_choice": self._epoch_choice_state(),
                "ema": None if self.ema is None else self.ema.module.state_dict()}

    def _epoch_choice_state(self) -> dict[str, torch.Tensor | None]:
        arrays = {**self.epoch_choice.state_dict(), "views": self.epoch_choice_views}
        return {key: None if value is None else torch.from_numpy(np.array(value)) for key, value in arrays.items()}

    def _restore_epoch_choice(self, state: dict[str, torch.Tensor | None]) -> None:
        arrays = {key: None if value is None else value.numpy() for key, value in state.items()}
        self.epoch_choice.load_state_dict(arrays)
        self.epoch_choice_views = arrays["views"]

    def restore(self, state: dict[str, Any], best: BestState | None) -> None:
        """Continue from ``checkpoint()``'s output and the best epoch saved beside it.

        The state may come from another configuration of the same architecture (population-based training
        hands a trial the checkpoint of a better one): weights, optimizer moments, epoch and random state are
        taken from it, and this configuration's own weight decay and learning-rate schedule (at the restored
        step) are applied; augmentation, mixup and the loss are this configuration's anyway.
        """
        own_decay = [group["weight_decay"] for group in self.optimizer.param_groups]
        self.model.load_state_dict(state["model"])
        if self.ema is not None:  # a checkpoint without an average (another config's) starts one from the weights
            self.ema.module.load_state_dict(state.get("ema") or state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        same = state.get("config", self.config.to_dict()) == self.config.to_dict()
        if same:
            self.scheduler.load_state_dict(state["scheduler"])
        self.random.load_state_dict(state["random"])
        self.precision.load_state_dict(state.get("precision", {}))
        self.epoch, self.updates, self.history = int(state["epoch"]), int(state["updates"]), list(state["history"])
        self.best = best
        if best is not None and state.get("epoch_choice") is not None:  # else it counts from here, as the best does
            self._restore_epoch_choice(state["epoch_choice"])
        if not same:
            for group, decay in zip(self.optimizer.param_groups, own_decay, strict=True):
                group["weight_decay"] = decay
            self.scheduler.step_update(self.updates)  # this config's lr at the restored step

    def inference_cost(self, batch_sizes: tuple[int, ...] = (1, 32)) -> dict[str, float]:
        """Parameters and milliseconds per image at each batch size, on this trial's device and settings."""
        shape = (self.data.in_chans, self.data.image_size, self.data.image_size)
        cost = {"parameters": float(count_parameters(self.model))}
        for size in batch_sizes:
            key = "ms_per_image" if size == 1 else f"ms_per_image_b{size}"
            cost[key] = ms_per_image(self.model, shape, self.device, size, repeats=10 if size == 1 else 3,
                                     memory_format=self.memory_format, autocast_dtype=self.precision.dtype)
        return cost


def train_trial(config: TrialConfig, data: TrialData, on_epoch: EpochCallback | None = None,
                device: str | torch.device | None = None) -> TrialOutcome:
    """Train one configuration and return its best epoch's state and its history."""
    return Trainer(config, data, device=device).fit(on_epoch)
