"""Benchmark 5c: whether scoring a moving average of the weights (``train.ema_decay``) makes ASHA's first rung a
better predictor of how trials end.

``search_rungs`` found that a rung at epoch 4 of 12 keeps about half of the flowers trials that later do best, and
that ranking by the noise-free accuracy at the rung does no better: the learning curves cross. A moving average
of the weights leads the trained weights by several points in mid-run (results/flowers.md). This trains
``--configs`` of the simulation's recorded flowers configurations again, as they were recorded (32 px, batch 32,
``--epochs`` epochs, one thread each, ``--jobs`` at a time), with ``train.ema_decay``, and scores every epoch twice:
the average (what validation then reports) and the trained weights (the same run without averaging: the average
only reads the weights). Per rung epoch and scoring it reports how many of the final top third (by the best
accuracy so far at the last epoch) the rung's top third (by the best so far at the rung, ASHA's metric in hpsearch)
keeps, the Spearman correlation of the two, and paired bootstrap intervals over configurations for the
difference:

    python -m benchmarks.rung_averaging [--configs 40] [--ema-decay 0.995] [--rungs 2,4,6] [--quick]

``--quick`` (a smoke test) trains 4 configurations for 3 epochs with rungs at epochs 1 and 2.
"""

from __future__ import annotations

import argparse
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from benchmarks.common import RESULTS, flowers_url, scratch_folder, write_results
from benchmarks.search_simulation import PARAMS, table_path

if TYPE_CHECKING:
    from hpsearch.data.config import DataConfig

SCORINGS = ("trained", "average")
BOOTSTRAP_DRAWS = 2000
SPLIT_SEED = 0  # the recording's seed, so its training and validation images


def recorded_configs(count: int, seed: int) -> pd.DataFrame:
    """``count`` of the flowers table's configurations (their numbers and parameters), drawn without replacement."""
    table = pd.read_csv(table_path("flowers"))
    configs = table.groupby("config")[PARAMS].first().reset_index()
    return configs.sample(n=count, random_state=seed).sort_values("config").reset_index(drop=True)


def train_config(row: dict, epochs: int, ema_decay: float, image_size: int, folder: str, seed_offset: int = 0
                 ) -> list[dict]:
    """One configuration trained as the recording trained it (with ``seed_offset`` added to its training seed),
    each epoch scored by the average and the weights."""
    import torch

    from hpsearch.data.dataset import prepare_trial_data
    from hpsearch.training import Trainer, TrialConfig
    from hpsearch.training.inference import predict_proba

    torch.set_num_threads(1)
    data = prepare_trial_data(flowers_data(image_size, Path(folder)), SPLIT_SEED, Path(folder), save=False)
    config = TrialConfig(backbone=row["backbone"], lr=float(row["lr"]), weight_decay=float(row["weight_decay"]),
                         drop_rate=float(row["drop_rate"]), aug_strength=float(row["aug_strength"]), batch_size=32,
                         flip=True, epochs=epochs, patience=epochs, ema_decay=ema_decay,
                         seed=int(row["config"]) + seed_offset)
    trainer = Trainer(config, data)
    labels = data.val.labels
    rows: list[dict] = []

    def on_epoch(metrics: dict, improved: bool) -> None:
        probs = predict_proba(trainer.model, data.val, trainer.normalize, 256, trainer.device, crop=data.crop)
        rows.append({"config": int(row["config"]), "backbone": row["backbone"], "epoch": int(metrics["epoch"]),
                     "average": float(metrics["val_acc"]), "trained": float((probs.argmax(1) == labels).mean())})

    trainer.fit(on_epoch)
    print(f"config {int(row['config'])}: trained {rows[-1]['trained']:.4f}, average {rows[-1]['average']:.4f}",
          flush=True)
    return rows


def train_all(configs: pd.DataFrame, epochs: int, ema_decay: float, image_size: int, jobs: int,
              seed_offset: int = 0) -> pd.DataFrame:
    """Every configuration's curves, ``jobs`` configurations at a time (one process and thread each)."""
    from hpsearch.data.dataset import prepare_trial_data

    folder = scratch_folder("hpsearch-rung-averaging-")
    prepare_trial_data(flowers_data(image_size, folder), SPLIT_SEED, folder, save=False)  # decoded before the workers
    with ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(train_config, row, epochs, ema_decay, image_size, str(folder), seed_offset)
                   for row in configs.to_dict("records")]
        return pd.DataFrame([r for f in futures for r in f.result()])


def flowers_data(image_size: int, folder: Path) -> DataConfig:
    """The recording's data section (the shared flowers archive), cached in ``folder``."""
    from hpsearch.data.config import DataConfig

    return DataConfig(source="folder", url=flowers_url(), image_size=image_size, cache_dir=str(folder / "cache"))


def best_so_far(curves: pd.DataFrame, scoring: str, epoch: int) -> pd.Series:
    return curves[curves["epoch"] <= epoch].groupby("config")[scoring].max()


def top_third(scores: np.ndarray) -> np.ndarray:
    return scores >= np.quantile(scores, 2.0 / 3.0)


def rung_stats(rung: np.ndarray, final: np.ndarray) -> tuple[float, float]:
    """(share of the final top third the rung's top third keeps, Spearman of rung and final scores)."""
    best = top_third(final)
    return float((top_third(rung) & best).sum() / best.sum()), float(spearmanr(rung, final).statistic)


def rung_table(curves: pd.DataFrame, rungs: list[int], seed: int = 0) -> pd.DataFrame:
    """Per rung epoch: each scoring's ``rung_stats`` and bootstrap intervals of average minus trained."""
    epochs = int(curves["epoch"].max())
    scores = {s: {e: best_so_far(curves, s, e).to_numpy() for e in [*rungs, epochs]} for s in SCORINGS}
    rng = np.random.default_rng(seed)
    n = len(scores["trained"][epochs])
    draws = [rng.integers(0, n, n) for _ in range(BOOTSTRAP_DRAWS)]
    rows = []
    for rung in rungs:
        row: dict = {"rung_epoch": rung}
        for scoring in SCORINGS:
            kept, rho = rung_stats(scores[scoring][rung], scores[scoring][epochs])
            row |= {f"kept_{scoring}": kept, f"spearman_{scoring}": rho}
        with warnings.catch_warnings():  # a draw of one repeated configuration has no rank correlation (NaN)
            warnings.simplefilter("ignore")
            diffs = np.array([np.subtract(*(rung_stats(scores[s][rung][d], scores[s][epochs][d])
                                            for s in SCORINGS[::-1])) for d in draws])
        low, high = np.nanquantile(diffs, [0.025, 0.975], axis=0)
        row |= {"kept_diff_ci": f"{low[0]:+.3f} to {high[0]:+.3f}",
                "spearman_diff_ci": f"{low[1]:+.3f} to {high[1]:+.3f}"}
        rows.append(row)
    return pd.DataFrame(rows)


def notes(curves: pd.DataFrame, seed: int, image_size: int, ema_decay: float, source: str, seed_offset: int = 0
          ) -> list[str]:
    epochs = int(curves["epoch"].max())
    last = curves[curves["epoch"] == epochs]
    finals = {s: best_so_far(curves, s, epochs) for s in SCORINGS}
    table = pd.read_csv(table_path("flowers"))
    recorded = table[table["config"].isin(finals["trained"].index) & (table["epoch"] <= epochs)]
    return [
        f"{curves['config'].nunique()} of the 200 recorded flowers configurations (learning_curves_flowers.csv.gz, "
        f"drawn with seed {seed}), trained again as recorded ({image_size} px, batch 32, flip, {epochs} epochs, no "
        f"early stopping; the training seed is the configuration's number"
        f"{f' + {seed_offset}' if seed_offset else ''}) with train.ema_decay={ema_decay}; every "
        f"epoch scored by the average and by the trained weights of the same run. Curves: {source}.",
        "kept_*: the share of the configurations in the final top third (best so far at the last epoch, by the "
        "same scoring) that a rung keeping its top third (best so far at the rung, ASHA's metric) keeps; "
        "spearman_*: rank correlation of the rung's and the final scores; *_diff_ci: 95% paired bootstrap interval "
        f"over configurations ({BOOTSTRAP_DRAWS} draws) of average minus trained.",
        f"Final best so far, mean over configurations: trained {finals['trained'].mean():.4f}, average "
        f"{finals['average'].mean():.4f} (the recording's curves of the same configurations: "
        f"{recorded.groupby('config')['val_acc'].max().mean():.4f}); best configuration {finals['trained'].max():.4f} "
        f"and {finals['average'].max():.4f}; last epoch, mean: trained {last['trained'].mean():.4f}, average "
        f"{last['average'].mean():.4f}.",
    ]


def write_repeats(curves: pd.DataFrame, out: Path) -> Path:
    """The average's curves as a repeats file of the table recorded with the same ``--ema-decay``: second runs of
    its configurations (``dataset, config, epoch, val_acc``), from which the surrogate measures run-to-run noise."""
    repeats = curves.rename(columns={"average": "val_acc"}).assign(dataset="flowers")
    out.parent.mkdir(parents=True, exist_ok=True)
    repeats[["dataset", "config", "epoch", "val_acc"]].to_csv(out, index=False, float_format="%.6g",
                                                              compression="gzip")
    print(f"Wrote {repeats['config'].nunique()} repeated configurations to {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=40, help="recorded flowers configurations to train again")
    parser.add_argument("--epochs", type=int, default=12, help="epochs per configuration (the recording's 12)")
    parser.add_argument("--ema-decay", type=float, default=0.995)
    parser.add_argument("--image-size", type=int, default=32, help="the recording's image size")
    parser.add_argument("--rungs", default="2,4,6", help="rung epochs to report, comma-separated")
    parser.add_argument("--jobs", type=int, default=2, help="configurations trained at once (one thread each)")
    parser.add_argument("--seed", type=int, default=0, help="which configurations are drawn")
    parser.add_argument("--seed-offset", type=int, default=0, help="added to every configuration's training seed "
                        "(0: the recording's own seed number)")
    parser.add_argument("--curves", help="analyse this saved curve table instead of training")
    parser.add_argument("--repeats", type=Path, help="also write the average's curves here as the repeats of the "
                        "table recorded with the same --ema-decay (benchmarks/surrogate.py: repeats_path)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 4 configurations, 3 epochs")
    args = parser.parse_args()
    if args.quick:
        args.configs, args.epochs, args.rungs = 4, 3, "1,2"
    saved = RESULTS / f"rung_averaging_curves{'-quick' if args.quick else ''}.csv"
    if args.curves:
        curves = pd.read_csv(args.curves)
    else:
        curves = train_all(recorded_configs(args.configs, args.seed), args.epochs, args.ema_decay, args.image_size,
                           args.jobs, args.seed_offset)
        curves.to_csv(saved, index=False, float_format="%.6g")
    table = rung_table(curves, [int(r) for r in args.rungs.split(",")])
    source = Path(args.curves).name if args.curves else saved.name
    if args.repeats:
        write_repeats(curves, args.repeats)
    write_results("rung_averaging", table, notes(curves, args.seed, args.image_size, args.ema_decay, source,
                                                      args.seed_offset),
                  quick=args.quick)


if __name__ == "__main__":
    main()
