"""Train a fixed list of configurations as one Ray Tune grid, in parallel, with the search's own machinery.

Bagging members and regularization sweeps are such grids: no sampler and no early stopping, but every run
keeps its best epoch on the validation split, as a trial does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpsearch.data import TrialData
from hpsearch.rundir import EXPERIMENT_DIR
from hpsearch.training import TrialConfig


def train_grid(configs: list[TrialConfig], data: TrialData, out_dir: Path, samples: list[np.ndarray] | None = None,
               measure_train: bool = False, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
               address: str | None = None) -> list[Path]:
    """Train one run per config (on ``samples[k]`` of the training split if given); return their folders.

    Each run keeps its best epoch on the validation split in ``out_dir/member_<k>/``.
    """
    from ray import tune
    from ray.tune import CLIReporter, ExperimentAnalysis

    from hpsearch.search.export import copy_best_checkpoint
    from hpsearch.search.session import check_resources, default_concurrency, ray_session
    from hpsearch.search.trainable import run_member
    from hpsearch.search.tune import METRIC, MODE

    with ray_session(address):
        check_resources(cpus_per_run, gpus_per_run)
        trainable = tune.with_resources(
            tune.with_parameters(run_member, data=data, members=configs, samples=samples, measure_train=measure_train,
                                 threads=cpus_per_run),
            {"cpu": cpus_per_run, "gpu": gpus_per_run})
        reporter = CLIReporter(metric_columns={"epoch": "epoch", "val_acc": "val_acc", METRIC: "best"},
                               parameter_columns=["member"], max_report_frequency=20)
        tuner = tune.Tuner(
            trainable,
            param_space={"member": tune.grid_search(list(range(len(configs))))},
            tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, reuse_actors=True,
                                        max_concurrent_trials=default_concurrency(cpus_per_run)),
            run_config=tune.RunConfig(name=EXPERIMENT_DIR, storage_path=str(out_dir.resolve()), verbose=1,
                                      progress_reporter=reporter,
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
        )
        tuner.fit()
    folders = []
    for trial in ExperimentAnalysis(str((out_dir / EXPERIMENT_DIR).resolve())).trials:
        folder = out_dir / f"member_{int(trial.config['member'])}"
        if not copy_best_checkpoint(trial, folder):
            raise RuntimeError(f"member {trial.config['member']} left no checkpoint (status {trial.status}); "
                               f"see {out_dir / EXPERIMENT_DIR}")
        folders.append(folder)
    return sorted(folders, key=lambda f: int(f.name.split("_")[1]))
