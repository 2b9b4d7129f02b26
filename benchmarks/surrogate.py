"""A surrogate of a recorded learning-curve table, and a Ray Tune trainable that replays it instead of training.

The table (``benchmarks/data/learning_curves_<dataset>.csv.gz``, written by ``search_simulation record``) holds,
for each configuration of a real search space, its validation accuracy and seconds at every epoch, and the size
of the validation split. A random forest over the configurations (one-hot backbone, log learning rate and weight
decay, the other knobs as they are) predicts the whole curve, and another its seconds per epoch. The replayed
accuracy is drawn as the share of correct images among the validation split's (a binomial draw around the
predicted accuracy, seeded by the trial's seed): two trials of one configuration differ as two measurements on
that many images do. (The forest's out-of-bag error is reported, not added: it is the surrogate's error, not
run-to-run noise.)
"""

from __future__ import annotations

import json
import math
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import cross_val_predict

KEYS = ("dataset", "config", "epoch")
RESULTS = ("val_acc", "epoch_seconds", "val_images")
LOG_SCALE = ("lr", "weight_decay")


def curves(table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(one row of parameters per configuration, accuracy per epoch, mean seconds per epoch) of one dataset."""
    params = [c for c in table.columns if c not in (*KEYS, *RESULTS)]
    configs = table.groupby("config")[params].first()
    acc = table.pivot(index="config", columns="epoch", values="val_acc").loc[configs.index]
    seconds = table.groupby("config")["epoch_seconds"].mean().loc[configs.index]
    complete = acc.notna().all(axis=1)
    return configs[complete], acc[complete].to_numpy(float), seconds[complete].to_numpy(float)


@dataclass
class Surrogate:
    """Random forests over a dataset's recorded configurations: the accuracy curve and the epoch cost."""

    params: list[str]
    categories: dict[str, list]
    curve_model: RandomForestRegressor
    cost_model: RandomForestRegressor
    oob_error: np.ndarray  # out-of-bag residual standard deviation per epoch (the surrogate's own error)
    val_images: int  # the validation split the accuracies were measured on
    epochs: int
    cv_r2_final: float  # 5-fold cross-validated R^2 of the final accuracy, for the report
    configs: int

    @classmethod
    def fit(cls, table: pd.DataFrame, seed: int = 0) -> Surrogate:
        configs, acc, seconds = curves(table)
        categories = {c: sorted(configs[c].astype(str).unique().tolist()) for c in configs.columns
                      if not pd.api.types.is_numeric_dtype(configs[c])}
        surrogate = cls(list(configs.columns), categories, None, None, np.zeros(acc.shape[1]),
                        int(table["val_images"].iloc[0]), acc.shape[1], math.nan, len(configs))
        x = surrogate.features(configs)
        forest = dict(n_estimators=100, min_samples_leaf=2, random_state=seed, oob_score=True, n_jobs=1)
        surrogate.curve_model = RandomForestRegressor(**forest).fit(x, acc)
        surrogate.cost_model = RandomForestRegressor(**forest).fit(x, np.log(seconds))
        surrogate.oob_error = np.std(acc - surrogate.curve_model.oob_prediction_, axis=0)
        folds = min(5, len(configs))
        final = cross_val_predict(RandomForestRegressor(**{**forest, "oob_score": False}), x, acc[:, -1], cv=folds)
        residual, spread = np.sum((acc[:, -1] - final) ** 2), np.sum((acc[:, -1] - acc[:, -1].mean()) ** 2)
        surrogate.cv_r2_final = float(1 - residual / spread)
        return surrogate

    def features(self, configs: pd.DataFrame) -> np.ndarray:
        columns = []
        for name in self.params:
            if name in self.categories:
                columns += [(configs[name].astype(str) == value).astype(float).to_numpy()
                            for value in self.categories[name]]
            elif name in LOG_SCALE:
                columns.append(np.log10(configs[name].astype(float).to_numpy()))
            else:
                columns.append(configs[name].astype(float).to_numpy())
        return np.column_stack(columns)

    def predict(self, config: dict[str, Any], seed: int) -> tuple[np.ndarray, float]:
        """The noisy accuracy curve (one value per epoch, in [0, 1]) and the seconds per epoch of ``config``."""
        values = {name: config[name] for name in self.params}
        x = self.features(pd.DataFrame([values]))
        curve = self.curve_model.predict(x)[0]
        rng = np.random.default_rng([seed, zlib.crc32(json.dumps(values, sort_keys=True, default=str).encode())])
        measured = rng.binomial(self.val_images, np.clip(curve, 0.0, 1.0)) / self.val_images
        return measured, float(np.exp(self.cost_model.predict(x)[0]))


def replay_trial(config: dict[str, Any], surrogate: Surrogate, checkpoint: bool = False) -> None:
    """A trainable that reports the surrogate's curve for ``config`` epoch by epoch, with the simulated seconds of
    each epoch. ``checkpoint``: save a tiny state every epoch (PBT and Hyperband pause and restore trials). A trial
    restored from another trial's state (PBT's exploit) continues from the donor's accuracy along its own curve."""
    from ray import tune

    curve, seconds = surrogate.predict(config, int(config.get("seed", 0)))
    own = config.get("optuna_trial")
    start, offset, best, exploited = 0, 0.0, 0.0, False
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            state = json.loads((Path(folder) / "state.json").read_text())
        start = int(state["epoch"])
        exploited = state["trial"] != own
        offset = state["acc"] - curve[start - 1] if exploited else state["offset"]
        best = state["acc"] if exploited else state["best"]
    for epoch in range(start + 1, surrogate.epochs + 1):
        acc = float(np.clip(curve[epoch - 1] + offset, 0.0, 1.0))
        best = max(best, acc)
        metrics = {"epoch": epoch, "val_acc": acc, "val_loss": 1.0 - acc, "train_acc": acc, "best_val_acc": best,
                   "epoch_seconds": seconds, "sim_seconds": seconds, "exploited": exploited,
                   "stopped_by_patience": False}
        exploited = False
        if not checkpoint:
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
            state = {"epoch": epoch, "acc": acc, "best": best, "offset": offset, "trial": own}
            (Path(tmp) / "state.json").write_text(json.dumps(state))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
