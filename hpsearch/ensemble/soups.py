"""Model soups of the top trials that share the best trial's architecture, BatchNorm recomputed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ensembles import greedy_soup, uniform_soup
from hpsearch.data import ImageArrays
from hpsearch.ensemble.methods import FitContext, SingleModelMethod, make_record, register_method
from hpsearch.io import atomic_save, write_json
from hpsearch.rundir import BEST_FILE, ENSEMBLES_DIR, MODEL_FILE, PROBS_FILE, EnsembleRecord, RunDir, SavedModel
from hpsearch.training import Normalizer, predict_proba, preserved_global_rng
from hpsearch.training.trainer import to_float


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, train: ImageArrays, normalize: Normalizer, batch_size: int = 128) -> None:
    """Reset every BatchNorm layer and re-estimate its statistics on the (unaugmented) training images."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over all batches
    model.train()
    with preserved_global_rng():  # dropout and stochastic depth draw in train mode
        for start in range(0, len(train), batch_size):
            model(normalize(to_float(train.images, slice(start, start + batch_size), torch.device("cpu"))))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()


def same_architecture(members: list[SavedModel]) -> list[SavedModel]:
    """The members with the best one's backbone and identical tensor names and shapes."""
    reference = members[0].state_dict()
    shapes = {k: v.shape for k, v in reference.items()}
    kept = []
    for member in members:
        if member.config.backbone != members[0].config.backbone:
            continue
        state = member.state_dict()
        if {k: v.shape for k, v in state.items()} == shapes:
            kept.append(member)
    return kept


@register_method
class SoupMethod(SingleModelMethod):
    """Uniform and greedy soups; the greedy one (never worse on validation) is kept as ``ensembles/soup``."""

    name = "soup"

    def fit(self, ctx: FitContext) -> EnsembleRecord:
        run, val = ctx.run, ctx.val
        ingredients = same_architecture(ctx.members)
        best = ingredients[0]
        in_chans, size = run.image_shape
        train = run.arrays("train")
        normalize = best.normalizer()
        states = [m.state_dict() for m in ingredients]
        scores = [float(m.info["val_acc"]) for m in ingredients]

        def soup_model(state: dict) -> nn.Module:
            model = best.build(len(run.classes), in_chans, size, state)
            recompute_batchnorm(model, train, normalize)
            return model

        def score(state: dict) -> float:
            probs = predict_proba(soup_model(state), val, normalize, 256, torch.device("cpu"))
            return float((probs.argmax(1) == val.labels).mean())

        uniform = uniform_soup(states, score) if len(states) > 1 else None
        greedy = greedy_soup(states, scores, score)
        final = soup_model(greedy.state) if len(greedy.members) > 1 else best.build(len(run.classes), in_chans, size)
        probs = predict_proba(final, val, normalize, 256, torch.device("cpu"))
        folder = save_soup(run, best, final, probs)
        chosen = [ingredients[i] for i in greedy.members]
        note = ("only one top trial has this architecture: the soup is that trial" if len(ingredients) == 1 else
                "soups average weights; they help when the ingredients share a pretrained starting point")
        trajectory = [{**step, "members": [ingredients[i].name for i in step["members"]]} for step in greedy.trajectory]
        return make_record(ctx, self.name, "GreedySoup", chosen, probs,
                           params={"batchnorm": "recomputed on the training split"},
                           model=str(folder.relative_to(run.path)), architecture=best.config.backbone,
                           candidates=[m.name for m in ingredients],
                           uniform_val_accuracy=None if uniform is None else uniform.score, trajectory=trajectory,
                           note=note)


def save_soup(run: RunDir, best: SavedModel, model: nn.Module, val_probs: np.ndarray) -> Path:
    folder = run.path / ENSEMBLES_DIR / "soup"
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save(folder / MODEL_FILE, lambda f: torch.save(state, f))
    atomic_save(folder / PROBS_FILE, lambda f: np.save(f, val_probs.astype(np.float32)))
    write_json(folder / BEST_FILE, {**best.info, "soup_of": best.name})
    return folder
