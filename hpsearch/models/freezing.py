"""Which parameters train: the classifier alone, everything, or all but the leading block groups."""

from __future__ import annotations

from timm.models import group_parameters
from torch import nn

from hpsearch.errors import RecipeError


def block_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names by timm's coarse block groups, input side first (stem, stages, head)."""
    matcher = getattr(model, "group_matcher", None)
    if matcher is None:
        raise RecipeError(f"{type(model).__name__} defines no block groups (timm's group_matcher), so "
                          f"train.frozen_blocks cannot freeze part of it; set train.frozen_blocks=0.")
    groups = group_parameters(model, matcher(coarse=True))
    return [groups[key] for key in sorted(groups)]


def check_frozen_blocks(model: nn.Module, frozen_blocks: int) -> None:
    """``frozen_blocks`` must leave at least one block group besides the classifier trainable."""
    if frozen_blocks <= 0:
        return
    count = len(block_groups(model))
    if frozen_blocks >= count - 1:
        raise RecipeError(f"{type(model).__name__} has {count} block groups (stem, stages, head), so "
                          f"train.frozen_blocks must be below {count - 1}, but got {frozen_blocks=}.")


def set_trainable(model: nn.Module, head_only: bool = False, frozen_blocks: int = 0) -> None:
    """Train only the classifier (``head_only``), or everything except the first ``frozen_blocks`` groups."""
    head = {id(p) for p in model.get_classifier().parameters()}
    frozen: set[str] = set()
    if frozen_blocks > 0 and not head_only:
        frozen = {name for group in block_groups(model)[:frozen_blocks] for name in group}
    for name, param in model.named_parameters():
        trainable = id(param) in head or (not head_only and name not in frozen)
        param.requires_grad_(trainable)


def apply_frozen_mode(model: nn.Module) -> None:
    """After ``model.train()``: normalization layers whose parameters are all frozen keep their statistics."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()
