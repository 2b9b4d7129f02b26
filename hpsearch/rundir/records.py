"""``ensembles/<model>.json``: the typed record of one model made of a run's trials."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpsearch.errors import HpsearchError
from hpsearch.io import read_json, write_json
from hpsearch.rundir.layout import (
    ENSEMBLES_DIR,
    REFIT_SUFFIX,
    TTA_SUFFIX,
    damaged,
)

RECORD_FORMAT = 2


@dataclass(frozen=True)
class Member:
    """One model an ensemble combines: its name, its folder (relative to the run directory) and its weight."""

    name: str
    path: str
    weight: float
    trial_id: str | None = None  # the search trial it is, if it is one

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "weight": self.weight, "trial_id": self.trial_id}


@dataclass(frozen=True)
class EnsembleRecord:
    """What ``ensembles/<name>.json`` holds: how to rebuild a model (a single trial or an ensemble), and its
    validation scores.

    ``model`` names the folder of a single model that replaces the members (a soup, a distilled student);
    ``tta`` the test-time views its members' probabilities are averaged over (empty: none; the record's name
    then ends in ``+tta``); ``temperature`` the temperature scaling fit on validation (1: none); the ``_oof``
    scores are out-of-fold (honest) validation scores; ``details`` whatever the method adds.

    ``refit``, when given, holds one folder per member (``None`` for members of weight 0): the member's
    configuration retrained on training + validation images (``hpsearch refit``), which predicts in the member's
    place. Everything else (members, weights, combination, temperature, scores) is the refit model's, learned on
    validation before the refit; its name ends in ``+refit`` and it has no validation score of its own.
    """

    method: str
    estimator: str
    members: tuple[Member, ...]
    val_accuracy: float
    val_log_loss: float
    params: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    tta: tuple[str, ...] = ()
    temperature: float = 1.0
    val_accuracy_oof: float | None = None
    val_log_loss_oof: float | None = None
    refit: tuple[str | None, ...] = ()

    @property
    def name(self) -> str:
        return variant_name(self.method, self.tta, bool(self.refit))

    @property
    def weights(self) -> np.ndarray:
        return np.array([m.weight for m in self.members], dtype=np.float64)

    def weighted_positions(self) -> list[int]:
        """Positions in ``members`` of the members that carry weight (greedy selection may leave some at 0; in
        the ``ensembles`` contract a member of weight 0 is left out of the combination)."""
        return [i for i, m in enumerate(self.members) if m.weight > 0]

    def used_members(self) -> list[Member]:
        """The members that carry weight."""
        return [self.members[i] for i in self.weighted_positions()]

    @property
    def of_trials(self) -> bool:
        """Whether every member that carries weight is a search trial (what ``hpsearch refit`` can retrain)."""
        return self.model is None and all(m.trial_id is not None for m in self.used_members())

    def same_model(self, other: EnsembleRecord) -> bool:
        """Whether ``other`` combines the same members in the same way (what a refit keeps of its model); scores
        and details aside."""
        def key(r: EnsembleRecord) -> tuple:
            return r.method, r.estimator, r.members, r.params, r.model, r.tta, r.temperature

        return key(self) == key(other)

    def to_json(self) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, "method": self.method, "estimator": self.estimator, "params": self.params,
                "members": [m.to_json() for m in self.members], "val_accuracy": self.val_accuracy,
                "val_log_loss": self.val_log_loss, "val_accuracy_oof": self.val_accuracy_oof,
                "val_log_loss_oof": self.val_log_loss_oof, "tta": list(self.tta), "temperature": self.temperature,
                "model": self.model, "details": self.details, "refit": list(self.refit)}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> EnsembleRecord:
        """Read a record; records written before the format had a number (format 1) are converted."""
        try:
            if data.get("format", 1) == 1:
                data = _from_format_1(data)
            members = tuple(Member(str(m["name"]), str(m["path"]), float(m["weight"]), m.get("trial_id"))
                            for m in data["members"])
            oof = {k: None if data.get(k) is None else float(data[k]) for k in ("val_accuracy_oof", "val_log_loss_oof")}
            refit = tuple(None if path is None else str(path) for path in data.get("refit") or ())
            if refit and len(refit) != len(members):
                raise ValueError(f"{len(refit)} refit folders for {len(members)} members")
            return cls(str(data["method"]), str(data["estimator"]), members, float(data["val_accuracy"]),
                       float(data["val_log_loss"]), dict(data.get("params") or {}), data.get("model"),
                       dict(data.get("details") or {}), tuple(data.get("tta") or ()),
                       float(data.get("temperature") or 1.0), **oof, refit=refit)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise damaged(where, f"not an ensemble record: {type(err).__name__} {err}") from None


def _from_format_1(data: dict[str, Any]) -> dict[str, Any]:
    """The first layout: the method's extra fields sat beside the common ones, trial ids inside member names."""
    common = {"method", "estimator", "params", "members", "val_accuracy", "val_log_loss", "model"}
    members = [{**m, "trial_id": m["name"].partition(":")[2] if m["name"].startswith("trial:") else None}
               for m in data["members"]]
    return {**{k: v for k, v in data.items() if k in common}, "members": members,
            "details": {k: v for k, v in data.items() if k not in common}}


def variant_name(method: str, tta: tuple[str, ...] | list[str], refit: bool = False) -> str:
    """A model's name in the tables and on the command line: the method, ``+tta`` with test-time views, then
    ``+refit`` when its trials were retrained on training + validation images."""
    return f"{method}{TTA_SUFFIX if tta else ''}{REFIT_SUFFIX if refit else ''}"


def write_record(run_dir: Path, record: EnsembleRecord) -> Path:
    return write_json(Path(run_dir) / ENSEMBLES_DIR / f"{record.name}.json", record.to_json())


def read_record(path: Path) -> EnsembleRecord:
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise HpsearchError(f"{str(path)!r} is missing.") from None
    except ValueError as err:
        raise damaged(path, f"not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise damaged(path, "not an ensemble record")
    return EnsembleRecord.from_json(data, path)


# --- the run directory ------------------------------------------------------------------------------------------------
