"""A surrogate of a recorded learning-curve table, and a Ray Tune trainable that replays it instead of training.

The table (``benchmarks/data/learning_curves_<dataset>.csv.gz``, written by ``search_simulation record``) holds,
for each configuration of a real search space, its validation accuracy and seconds at every epoch, and the size
of the validation split. A random forest over the configurations (one-hot backbone, log learning rate and weight
decay, the other knobs as they are) predicts the whole curve, and another its seconds per epoch. The replayed
accuracy adds, at each epoch, Gaussian noise of the size the recorded curves jitter by at that epoch (seeded by the
trial's seed; smaller near 0 and 1, see ``bounded_noise``) and is rounded to a share of the validation images.
Recorded curves jitter most in the first epochs (training at a high learning rate) and least in the last (a cosine
schedule's small steps: successive models share most of their mistakes on the fixed validation split), so
independent binomial draws on that many images would understate the noise ASHA's early rungs see and overstate the
late one that inflates the best of many trials.
(The forest's out-of-bag error is reported, not added: it is the surrogate's error, not run-to-run noise.)

Smooth curves (a moving average of the weights validated, ``train.ema_decay``) barely jitter from epoch to epoch,
yet a second run of the same configuration ends elsewhere: the jitter then understates run-to-run noise (flowers
with averaging: 0.003 at the last epoch against 0.009 between two runs). Where the table has a repeats file
(``<table>_repeats.csv.gz``: second runs of some of its configurations, ``config, epoch, val_acc``), the replay
draws each run's noise jointly over its epochs, with the run-to-run covariance those pairs show
(``repeat_covariance``): a run that is lucky at one epoch stays somewhat lucky at the next, as measured.
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
from scipy.stats import norm
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import cross_val_predict

KEYS = ("dataset", "config", "epoch")
RESULTS = ("val_acc", "epoch_seconds", "val_images")
LOG_SCALE = ("lr", "weight_decay")
NOISE_BAND = 3.0  # replayed noise keeps this many sds between a curve and the bounds 0 and 1
REACH_DRAWS = 1000  # replays per configuration behind a chance of reaching a target under correlated noise


def curves(table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(one row of parameters per configuration, accuracy per epoch, mean seconds per epoch) of one dataset."""
    params = [c for c in table.columns if c not in (*KEYS, *RESULTS)]
    configs = table.groupby("config")[params].first()
    acc = table.pivot(index="config", columns="epoch", values="val_acc").loc[configs.index]
    seconds = table.groupby("config")["epoch_seconds"].mean().loc[configs.index]
    complete = acc.notna().all(axis=1)
    return configs[complete], acc[complete].to_numpy(float), seconds[complete].to_numpy(float)


def epoch_noise(acc: np.ndarray, val_images: int) -> np.ndarray:
    """Per epoch, the standard deviation of the recorded curves' jitter (``acc``: configurations x epochs).

    For independent noise of sd ``s`` on a smooth curve, ``a[t] - (a[t-1] + a[t+1]) / 2`` varies by ``1.5 s^2``
    across configurations (its mean, the curves' bend, is removed). The first and last epochs take their
    neighbour's estimate. Fewer than 3 epochs cannot tell jitter from the curve: every epoch then gets the
    binomial sd of the mean final accuracy measured on ``val_images`` images.
    """
    if acc.shape[1] < 3:
        final = float(np.clip(acc[:, -1].mean(), 0.0, 1.0))
        return np.full(acc.shape[1], math.sqrt(final * (1 - final) / val_images))
    inner = np.sqrt(np.var(acc[:, 1:-1] - (acc[:, :-2] + acc[:, 2:]) / 2, axis=0) / 1.5)
    return np.concatenate([inner[:1], inner, inner[-1:]])


def bounded_noise(curve: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The noise sd to replay at each epoch of ``curve``: the recorded jitter, shrunk where the curve comes within
    ``NOISE_BAND`` sds of 0 or 1. An accuracy's noise vanishes at its bounds (a binomial share's does), and clipping
    Gaussian noise there would pile draws onto 1.0: on digits at 32 px, where curves rise from 0.2 to 0.95 within two
    epochs (their jitter estimate is 0.13 at epoch 1) and end near 0.99, 46% of replayed runs were perfect at some
    epoch (mostly epochs 2-4), against 0.5% of the recorded configurations; shrunk, 2.9%. Curves far from the bounds
    (flowers: 0.2-0.8) replay exactly as without it."""
    room = np.clip(np.minimum(curve, 1.0 - curve), 0.0, None)
    return np.minimum(noise, room / NOISE_BAND)


def repeats_path(table_path: Path) -> Path:
    """Where a table's repeats live: ``learning_curves_flowers_ema.csv.gz`` -> ``..._ema_repeats.csv.gz``."""
    name = table_path.name
    stem = name[:-len(".csv.gz")] if name.endswith(".csv.gz") else table_path.stem
    return table_path.with_name(f"{stem}_repeats.csv.gz")


def repeat_covariance(table: pd.DataFrame, repeats: pd.DataFrame) -> tuple[np.ndarray, int]:
    """(the run-to-run covariance of the accuracy between epochs, the number of repeated configurations), from
    ``repeats``: second runs (``config, epoch, val_acc``) of some of ``table``'s configurations. Each of a pair's
    runs carries the noise once, so it is half the covariance of their differences (whose mean, a shift common to
    the second runs, is removed)."""
    first = table.pivot(index="config", columns="epoch", values="val_acc")
    second = repeats.pivot(index="config", columns="epoch", values="val_acc")
    if list(second.columns) != list(first.columns):
        raise ValueError(f"The repeats hold epochs {list(second.columns)}, the table {list(first.columns)}: record "
                         f"the repeats with the table's epoch budget.")
    both = first.index.intersection(second.index)
    differences = (second.loc[both] - first.loc[both]).dropna().to_numpy(float)
    if len(differences) <= differences.shape[1]:
        raise ValueError(f"{len(differences)} configurations of the table are repeated with every epoch; a "
                         f"covariance over {differences.shape[1]} epochs needs more than {differences.shape[1]}.")
    return np.cov(differences, rowvar=False) / 2, len(differences)


def load_surrogate(table_path: Path, table: pd.DataFrame | None = None, seed: int = 0) -> Surrogate:
    """The surrogate of the table at ``table_path`` (``table``: its rows, when already read), with the run-to-run
    noise of its repeats file if it has one."""
    table = pd.read_csv(table_path) if table is None else table
    repeats = repeats_path(table_path)
    return Surrogate.fit(table, seed, pd.read_csv(repeats) if repeats.is_file() else None)


def empirical_random_best(table: pd.DataFrame, trials: int, draws: int = 2000, seed: int = 0) -> float:
    """The median best accuracy (any epoch) of ``trials`` recorded configurations drawn at random with replacement:
    what a random search of full-length trials reaches on the recorded curves themselves, to check the surrogate's
    random search against."""
    _, acc, _ = curves(table)
    best = acc.max(axis=1)
    rng = np.random.default_rng(seed)
    return float(np.median(best[rng.integers(0, len(best), size=(draws, trials))].max(axis=1)))


@dataclass
class Surrogate:
    """Random forests over a dataset's recorded configurations: the accuracy curve and the epoch cost."""

    params: list[str]
    categories: dict[str, list]
    curve_model: RandomForestRegressor
    cost_model: RandomForestRegressor
    oob_error: np.ndarray  # out-of-bag residual standard deviation per epoch (the surrogate's own error)
    noise: np.ndarray  # per epoch, the sd of the recorded curves' jitter (the replayed run-to-run noise)
    val_images: int  # the validation split the accuracies were measured on
    epochs: int
    cv_r2_final: float  # 5-fold cross-validated R^2 of the final accuracy, for the report
    configs: int
    noise_corr: np.ndarray | None = None  # with repeats: the run-to-run correlation between epochs
    repeats: int = 0  # how many repeated configurations measured it

    @classmethod
    def fit(cls, table: pd.DataFrame, seed: int = 0, repeats: pd.DataFrame | None = None) -> Surrogate:
        """Fit the forests; ``repeats`` (second runs of some configurations): replay the run-to-run noise they show
        (its sd and correlation between epochs) instead of the curves' jitter."""
        configs, acc, seconds = curves(table)
        categories = {c: sorted(configs[c].astype(str).unique().tolist()) for c in configs.columns
                      if not pd.api.types.is_numeric_dtype(configs[c])}
        val_images = int(table["val_images"].iloc[0])
        surrogate = cls(list(configs.columns), categories, None, None, np.zeros(acc.shape[1]),
                        epoch_noise(acc, val_images), val_images, acc.shape[1], math.nan, len(configs))
        x = surrogate.features(configs)
        forest = dict(n_estimators=100, min_samples_leaf=2, random_state=seed, oob_score=True, n_jobs=1)
        surrogate.curve_model = RandomForestRegressor(**forest).fit(x, acc)
        surrogate.cost_model = RandomForestRegressor(**forest).fit(x, np.log(seconds))
        surrogate.oob_error = np.std(acc - surrogate.curve_model.oob_prediction_, axis=0)
        folds = min(5, len(configs))
        final = cross_val_predict(RandomForestRegressor(**{**forest, "oob_score": False}), x, acc[:, -1], cv=folds)
        residual, spread = np.sum((acc[:, -1] - final) ** 2), np.sum((acc[:, -1] - acc[:, -1].mean()) ** 2)
        surrogate.cv_r2_final = float(1 - residual / spread)
        if repeats is not None:
            covariance, surrogate.repeats = repeat_covariance(table, repeats)
            surrogate.noise = np.sqrt(np.diag(covariance))
            scale = np.maximum(surrogate.noise, 1e-12)
            surrogate.noise_corr = covariance / np.outer(scale, scale)
        return surrogate

    def noise_model(self) -> str:
        """The replayed noise in words, for the reports."""
        sizes = f"sd {self.noise[0]:.4f} at epoch 1, {self.noise[-1]:.4f} at the last"
        if self.noise_corr is None:
            return f"independent per epoch, the recorded curves' jitter ({sizes})"
        lag1 = float(np.mean(np.diag(self.noise_corr, 1)))
        return (f"correlated over a run's epochs as {self.repeats} repeated configurations show ({sizes}; "
                f"mean correlation of neighbouring epochs {lag1:.2f})")

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

    def mean_curves(self, configs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The noise-free accuracy curves (configurations x epochs) and seconds per epoch of ``configs``."""
        x = self.features(configs[self.params])
        return self.curve_model.predict(x), np.exp(self.cost_model.predict(x))

    def reach_probability(self, curves: np.ndarray, target: float) -> np.ndarray:
        """Per row of mean ``curves``, the chance that one replayed run of it shows ``target`` (a share of the
        validation images) at some epoch."""
        return self.reach_probabilities(curves, np.array([target]))[:, 0]

    def reach_probabilities(self, curves: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``reach_probability`` of every target (rows x targets). Independent noise per epoch: exact. Correlated:
        the share of ``REACH_DRAWS`` seeded replays (``measure``) whose best epoch reaches it."""
        if self.noise_corr is None:
            edges = np.asarray(targets) - 0.5 / self.val_images  # the rounded share reaches a target from here on
            sd = np.maximum(bounded_noise(curves, self.noise), 1e-12)
            return np.column_stack([1.0 - np.prod(norm.cdf((edge - curves) / sd), axis=1) for edge in edges])
        rng = np.random.default_rng(0)
        best = np.column_stack([self.measure(curves, rng).max(axis=1) for _ in range(REACH_DRAWS)])
        return np.column_stack([(best >= target - 1e-9).mean(axis=1) for target in np.asarray(targets)])

    def predict(self, config: dict[str, Any], seed: int) -> tuple[np.ndarray, float]:
        """The noisy accuracy curve (one value per epoch, in [0, 1]) and the seconds per epoch of ``config``."""
        measured, _, seconds = self.replay_curves(config, seed)
        return measured, seconds

    def replay_curves(self, config: dict[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray, float]:
        """``predict``'s noisy curve, the noise-free curve it was drawn around (what the configuration gives on
        average at each epoch) and the seconds per epoch."""
        values = {name: config[name] for name in self.params}
        means, seconds = self.mean_curves(pd.DataFrame([values]))
        curve = means[0]
        rng = np.random.default_rng([seed, zlib.crc32(json.dumps(values, sort_keys=True, default=str).encode())])
        return self.measure(curve, rng), curve, float(seconds[0])

    def measure(self, curves: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One replayed measurement of noise-free ``curves`` (one, or configurations x epochs): noise of each
        epoch's sd (``bounded_noise``), independent or correlated between epochs (``noise_corr``), clipped to
        [0, 1] and rounded to a share of the validation images."""
        sd = bounded_noise(curves, self.noise)
        if self.noise_corr is None:
            noise = rng.normal(0.0, sd)
        else:
            noise = sd * rng.multivariate_normal(np.zeros(self.epochs), self.noise_corr, size=curves.shape[:-1],
                                                 method="eigh")
        return np.round(np.clip(curves + noise, 0.0, 1.0) * self.val_images) / self.val_images


def replay_trial(config: dict[str, Any], surrogate: Surrogate, checkpoint: bool = False) -> None:
    """A trainable that reports the surrogate's curve for ``config`` epoch by epoch, with the simulated seconds of
    each epoch and the noise-free accuracy behind each reported one (``true_acc``). ``checkpoint``: save a tiny
    state every epoch (PBT and Hyperband pause and restore trials). A trial restored from another trial's state
    (PBT's exploit) continues from the donor's accuracy along its own curve."""
    from ray import tune

    curve, truth, seconds = surrogate.replay_curves(config, int(config.get("seed", 0)))
    own = config.get("optuna_trial")
    start, offset, true_offset, best, exploited = 0, 0.0, 0.0, 0.0, False
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            state = json.loads((Path(folder) / "state.json").read_text())
        start = int(state["epoch"])
        exploited = state["trial"] != own
        offset = state["acc"] - curve[start - 1] if exploited else state["offset"]
        true_offset = state["true"] - truth[start - 1] if exploited else state["true_offset"]
        best = state["acc"] if exploited else state["best"]
    for epoch in range(start + 1, surrogate.epochs + 1):
        acc = float(np.clip(curve[epoch - 1] + offset, 0.0, 1.0))
        true = float(np.clip(truth[epoch - 1] + true_offset, 0.0, 1.0))
        best = max(best, acc)
        metrics = {"epoch": epoch, "val_acc": acc, "val_loss": 1.0 - acc, "train_acc": acc, "best_val_acc": best,
                   "true_acc": true, "epoch_seconds": seconds, "sim_seconds": seconds, "exploited": exploited,
                   "stopped_by_patience": False}
        exploited = False
        if not checkpoint:
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
            state = {"epoch": epoch, "acc": acc, "best": best, "offset": offset, "true": true,
                     "true_offset": true_offset, "trial": own}
            (Path(tmp) / "state.json").write_text(json.dumps(state))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
