"""Fitted ensembles as torch modules, so that a whole ensemble exports as one graph (ONNX, TorchScript).

Each module maps a stack of member probabilities (n_models, batch, n_classes) to the ensemble's
probabilities (batch, n_classes) exactly as the estimator's ``predict_proba`` does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ensembles.averaging import HardVoting, SingleModel, SoftVoting
from ensembles.base import LOG_LOSS_CLIP
from ensembles.boosting import AdaBoostSAMME
from ensembles.greedy import GreedySelection
from ensembles.stacking import STACK_FEATURE_CLIP, Stacking


class WeightedAverage(nn.Module):
    def __init__(self, weights: np.ndarray):
        super().__init__()
        self.register_buffer("weights", torch.as_tensor(np.asarray(weights), dtype=torch.float32))

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        return torch.einsum("m,mbk->bk", self.weights, stack)


class FirstOf(nn.Module):
    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        return stack[0]


class MajorityVote(nn.Module):
    def __init__(self, tie_break: float):
        super().__init__()
        self.tie_break = tie_break

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        votes = nn.functional.one_hot(stack.argmax(dim=2), stack.shape[2]).to(stack.dtype).mean(dim=0)
        shares = votes + self.tie_break * stack.mean(dim=0)
        return shares / shares.sum(dim=1, keepdim=True)


class LogisticStack(nn.Module):
    """A fitted scikit-learn logistic regression on the members' log-probabilities."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray, n_classes: int):
        super().__init__()
        self.register_buffer("coef", torch.as_tensor(coef, dtype=torch.float32))
        self.register_buffer("intercept", torch.as_tensor(intercept, dtype=torch.float32))
        self.register_buffer("classes", torch.as_tensor(classes, dtype=torch.long))
        self.n_classes = n_classes

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        features = torch.log(stack.clamp(STACK_FEATURE_CLIP, 1.0)).permute(1, 0, 2).reshape(stack.shape[1], -1)
        logits = features @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:  # two classes: scikit-learn's binary model is one logit
            positive = torch.sigmoid(logits[:, 0])
            known = torch.stack([1 - positive, positive], dim=1)
        else:
            known = torch.softmax(logits, dim=1)
        out = torch.zeros(stack.shape[1], self.n_classes, dtype=known.dtype)
        return out.index_copy(1, self.classes, known)


class SammeVote(nn.Module):
    def __init__(self, weights: np.ndarray, n_classes: int):
        super().__init__()
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32))
        self.n_classes = n_classes

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        k = self.n_classes
        onehot = nn.functional.one_hot(stack.argmax(dim=2), k).to(stack.dtype)
        votes = onehot * (1.0 + 1.0 / (k - 1)) - 1.0 / (k - 1)  # 1 for the vote, -1/(K-1) for the others
        decision = torch.einsum("m,mbk->bk", self.weights, votes) / max(k - 1, 1)
        return torch.softmax(decision, dim=1)


class Temperature(nn.Module):
    """softmax(log(p) / T), as ``ensembles.scale_probabilities``."""

    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(torch.log(probs.clamp(LOG_LOSS_CLIP, 1.0)) / self.temperature, dim=-1)


def as_torch(estimator: object) -> nn.Module:
    """The torch module that computes ``estimator.predict_proba`` on a stack (a fitted ensemble)."""
    if isinstance(estimator, SingleModel):
        return FirstOf()
    if isinstance(estimator, HardVoting):
        return MajorityVote(estimator.tie_break)
    if isinstance(estimator, AdaBoostSAMME):
        return SammeVote(estimator.weights_, estimator.n_classes_)
    if isinstance(estimator, Stacking):
        meta = estimator.meta_learner_
        if not hasattr(meta, "coef_"):
            raise TypeError(f"only a linear meta-learner exports, not {type(meta).__name__}")
        return LogisticStack(meta.coef_, meta.intercept_, meta.classes_, estimator.n_classes_)
    if isinstance(estimator, (SoftVoting, GreedySelection)):  # weighted averages (bagging is a SoftVoting)
        return WeightedAverage(estimator.weights_)
    raise TypeError(f"{type(estimator).__name__} has no torch form")
