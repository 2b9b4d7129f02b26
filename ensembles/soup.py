"""Model soups (Wortsman et al., 2022): averaged weights of fine-tuned models with one architecture."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

StateDict = dict[str, torch.Tensor]


def average_state_dicts(states: Sequence[StateDict], weights: Sequence[float] | None = None) -> StateDict:
    """Weighted average of floating-point tensors; integer buffers (BatchNorm counters) from the first."""
    if not states:
        raise ValueError("a soup needs at least one state dict")
    keys = list(states[0])
    for index, state in enumerate(states[1:], start=1):
        if list(state) != keys or any(state[k].shape != states[0][k].shape for k in keys):
            raise ValueError(f"state dict #{index} does not share the architecture of #0; soups need one architecture")
    w = torch.ones(len(states), dtype=torch.float64) if weights is None else torch.tensor(weights, dtype=torch.float64)
    w = w / w.sum()
    soup = {}
    for key in keys:
        first = states[0][key]
        if not torch.is_floating_point(first):
            soup[key] = first.clone()
            continue
        total = sum(wi * s[key].to(torch.float64) for wi, s in zip(w.tolist(), states, strict=True))
        soup[key] = total.to(first.dtype)
    return soup


@dataclass
class SoupResult:
    state: StateDict
    members: list[int]
    score: float
    trajectory: list[dict] = field(default_factory=list)


def uniform_soup(states: Sequence[StateDict], evaluate: Callable[[StateDict], float]) -> SoupResult:
    """Average every ingredient; ``evaluate`` (e.g. recompute BatchNorm, then validation accuracy) scores it."""
    state = average_state_dicts(states)
    score = evaluate(state)
    return SoupResult(state, list(range(len(states))), score, [{"members": list(range(len(states))), "score": score}])


def greedy_selection(scores: Sequence[float], evaluate: Callable[[list[int]], float]) -> tuple[list[int], float,
                                                                                          list[dict]]:
    """Greedy soup's choice of ingredients, by index: visit them best-first (by ``scores``) and keep each one
    whose addition does not lower ``evaluate(members)``. Returns the members, their score and every step."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    members = [order[0]]
    best = float(scores[order[0]])
    trajectory = [{"members": list(members), "score": best, "added": True}]
    for index in order[1:]:
        score = evaluate(members + [index])
        keep = score >= best
        trajectory.append({"members": members + [index], "score": score, "added": keep})
        if keep:
            members.append(index)
            best = score
    return members, best, trajectory


def greedy_soup(states: Sequence[StateDict], scores: Sequence[float],
                evaluate: Callable[[StateDict], float]) -> SoupResult:
    """Visit ingredients best-first; keep each one whose addition does not lower the soup's score."""
    members, best, trajectory = greedy_selection(
        scores, lambda chosen: evaluate(average_state_dicts([states[i] for i in chosen])))
    state = states[members[0]] if len(members) == 1 else average_state_dicts([states[i] for i in members])
    return SoupResult(state, members, best, trajectory)
