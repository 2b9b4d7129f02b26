"""Model soups of the top trials that share the best trial's architecture, BatchNorm recomputed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ensembles import average_state_dicts, greedy_selection, stratified_folds
from hpsearch.data import ImageArrays
from hpsearch.ensemble.methods import FitContext, Fitted, SingleModelMethod, make_record, register_method
from hpsearch.io import atomic_save, write_json
from hpsearch.rundir import BEST_FILE, ENSEMBLES_DIR, MODEL_FILE, PROBS_FILE, RunDir, SavedModel, drop_stale_probs
from hpsearch.training import BatchBuffer, Normalizer, predict_proba, preserved_global_rng
from hpsearch.training.inference import center_crop

BATCHNORM_SAMPLE = 1024  # training images that re-estimate a soup's BatchNorm statistics


def batchnorm_sample(train: ImageArrays, size: int = BATCHNORM_SAMPLE, seed: int = 0) -> ImageArrays:
    """A fixed, seeded subset of the training images (all of them if there are fewer)."""
    if len(train) <= size:
        return train
    index = np.sort(np.random.default_rng(seed).choice(len(train), size=size, replace=False))
    return ImageArrays(train.images[index], train.labels[index])


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, images: ImageArrays, normalize: Normalizer, batch_size: int = 128,
                        crop: int | None = None) -> None:
    """Reset every BatchNorm layer and re-estimate its statistics on (unaugmented) training images."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over all batches
    model.train()
    buffer = BatchBuffer()
    with preserved_global_rng():  # dropout and stochastic depth draw in train mode
        for start in range(0, len(images), batch_size):
            batch = buffer.load(images.images, slice(start, start + batch_size), torch.device("cpu"))
            model(normalize.apply_(center_crop(batch, crop)))
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


class SoupKitchen:
    """Soups of one run's ingredients: each distinct set of ingredients is averaged, its BatchNorm re-estimated
    and its validation probabilities computed once, whatever asks for it (the greedy choice on all of
    validation, or on k-1 folds of it for the out-of-fold score)."""

    def __init__(self, ctx: FitContext, ingredients: list[SavedModel]):
        self.run, self.val, self.ingredients = ctx.run, ctx.val, ingredients
        self.states = [m.state_dict() for m in ingredients]
        self.normalize = ingredients[0].normalizer()
        self.sample = batchnorm_sample(ctx.run.arrays("train"), seed=ctx.run.seed)
        self.crop = ctx.run.data_config.crop
        self._probs: dict[tuple[int, ...], np.ndarray] = {}

    def model(self, members: tuple[int, ...]) -> nn.Module:
        best, run = self.ingredients[0], self.run
        in_chans, size = run.image_shape
        if len(members) == 1:
            return self.ingredients[members[0]].build(len(run.classes), in_chans, size)
        model = best.build(len(run.classes), in_chans, size, average_state_dicts([self.states[i] for i in members]))
        recompute_batchnorm(model, self.sample, self.normalize, crop=self.crop)
        return model

    def probs(self, members: list[int]) -> np.ndarray:
        key = tuple(sorted(members))
        if key not in self._probs:
            if len(key) == 1:  # an ingredient alone: its training already saved these
                self._probs[key] = self.ingredients[key[0]].val_probs
            else:
                self._probs[key] = predict_proba(self.model(key), self.val, self.normalize, 256, torch.device("cpu"),
                                                 crop=self.crop)
        return self._probs[key]

    def accuracy(self, members: list[int], index: np.ndarray | slice = slice(None)) -> float:
        return float((self.probs(members)[index].argmax(1) == self.val.labels[index]).mean())

    def choose(self, index: np.ndarray | slice = slice(None)) -> tuple[list[int], float, list[dict]]:
        """Greedy soup's ingredients, judged on the validation images at ``index`` only."""
        scores = [self.accuracy([i], index) for i in range(len(self.ingredients))]
        return greedy_selection(scores, lambda members: self.accuracy(members, index))


@register_method
class SoupMethod(SingleModelMethod):
    """A greedy soup of the top trials that share the best one's architecture (kept as ``ensembles/soup``):
    ingredients join best-first while validation accuracy does not drop; BatchNorm is re-estimated on a
    bounded sample of training images. Soups help when the ingredients share a pretrained starting point."""

    name, position = "soup", 70

    def cook(self, ctx: FitContext) -> dict:
        kitchen = SoupKitchen(ctx, same_architecture(ctx.members))
        members, score, trajectory = kitchen.choose()
        uniform = kitchen.accuracy(list(range(len(kitchen.ingredients)))) if len(kitchen.ingredients) > 1 else None
        model = kitchen.model(tuple(sorted(members)))
        folder = save_soup(ctx.run, kitchen.ingredients[0], model, kitchen.probs(members))
        return {"kitchen": kitchen, "members": members, "trajectory": trajectory, "uniform": uniform,
                "folder": folder}

    def fit(self, ctx: FitContext) -> Fitted:
        soup = ctx.remember(self.name, lambda: self.cook(ctx))
        kitchen = soup["kitchen"]
        chosen = [kitchen.ingredients[i] for i in soup["members"]]
        saved = SavedModel(self.name, soup["folder"])
        note = ("only one top trial has this architecture: the soup is that trial" if len(kitchen.ingredients) == 1
                else "soups average weights; they help when the ingredients share a pretrained starting point")
        trajectory = [{**step, "members": [kitchen.ingredients[i].name for i in step["members"]]}
                      for step in soup["trajectory"]]
        return make_record(ctx, self.name, "GreedySoup", chosen, ctx.probs(saved),
                           params={"batchnorm": f"recomputed on {len(kitchen.sample)} training images"},
                           model=str(saved.folder.relative_to(ctx.run.path)),
                           architecture=kitchen.ingredients[0].config.backbone,
                           candidates=[m.name for m in kitchen.ingredients], uniform_val_accuracy=soup["uniform"],
                           trajectory=trajectory, note=note)

    def oof(self, ctx: FitContext, fitted: Fitted) -> np.ndarray:
        """The ingredients chosen on k-1 folds, their soup scored on the held-out fold (one ingredient alone: its
        out-of-fold epoch choice, as the best single trial is scored)."""
        kitchen = ctx.memo[self.name]["kitchen"]
        out = np.zeros_like(fitted.probs)
        for train, held_out in stratified_folds(ctx.y, ctx.options.folds, ctx.run.seed):
            members, _, _ = kitchen.choose(train)
            if len(members) == 1:
                probs = ctx.oof_probs(kitchen.ingredients[members[0]])
            else:
                probs = kitchen.probs(members) if not ctx.views else self.with_views(ctx, kitchen, members)
            out[held_out] = probs[held_out]
        return out

    @staticmethod
    def with_views(ctx: FitContext, kitchen: SoupKitchen, members: list[int]) -> np.ndarray:
        model = kitchen.model(tuple(sorted(members)))
        return predict_proba(model, ctx.val, kitchen.normalize, 256, torch.device("cpu"), ctx.views, kitchen.crop)


def save_soup(run: RunDir, best: SavedModel, model: nn.Module, val_probs: np.ndarray) -> Path:
    folder = run.path / ENSEMBLES_DIR / "soup"
    folder.mkdir(parents=True, exist_ok=True)
    drop_stale_probs(folder)  # the probabilities of an earlier soup
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save(folder / MODEL_FILE, lambda f: torch.save(state, f))
    atomic_save(folder / PROBS_FILE, lambda f: np.save(f, val_probs.astype(np.float32)))
    write_json(folder / BEST_FILE, {**best.info, "soup_of": best.name})
    return folder
