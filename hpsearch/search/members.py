"""Train ensemble members (bagging) as Ray Tune trials, in parallel, with the search's own machinery."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpsearch.data import TrialData
from hpsearch.search.export import copy_best_checkpoint
from hpsearch.search.trainable import run_member
from hpsearch.search.tune import METRIC, MODE, check_resources, default_concurrency, start_ray
from hpsearch.training import TrialConfig


def train_members(configs: list[TrialConfig], data: TrialData, out_dir: Path, samples: list[np.ndarray] | None = None,
                  measure_train: bool = False, cpus_per_member: float = 1.0, gpus_per_member: float = 0.0,
                  address: str | None = None) -> list[Path]:
    """Train one member per config (on ``samples[k]`` of the training split if given); return their folders.

    Members run in parallel as a Ray Tune grid (one trial each, no early stopping but their own
    patience); each keeps its best epoch on the validation split in ``out_dir/member_<k>/``.
    """
    from ray import tune
    from ray.tune import CLIReporter, ExperimentAnalysis

    started = start_ray(address)
    try:
        check_resources(cpus_per_member, gpus_per_member)
        trainable = tune.with_resources(
            tune.with_parameters(run_member, data=data, members=configs, samples=samples, measure_train=measure_train,
                                 threads=cpus_per_member),
            {"cpu": cpus_per_member, "gpu": gpus_per_member})
        reporter = CLIReporter(metric_columns={"epoch": "epoch", "val_acc": "val_acc", METRIC: "best"},
                               parameter_columns=["member"], max_report_frequency=20)
        tuner = tune.Tuner(
            trainable,
            param_space={"member": tune.grid_search(list(range(len(configs))))},
            tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, max_concurrent_trials=default_concurrency(cpus_per_member),
                                        reuse_actors=True),
            run_config=tune.RunConfig(name="ray", storage_path=str(out_dir.resolve()), verbose=1,
                                      progress_reporter=reporter, checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
        )
        tuner.fit()
    finally:
        if started:
            import ray

            ray.shutdown()
    folders = []
    for trial in ExperimentAnalysis(str((out_dir / "ray").resolve())).trials:
        folder = out_dir / f"member_{int(trial.config['member'])}"
        if not copy_best_checkpoint(trial, folder):
            raise RuntimeError(f"member {trial.config['member']} left no checkpoint (status {trial.status}); "
                               f"see {out_dir / 'ray'}")
        folders.append(folder)
    return sorted(folders, key=lambda f: int(f.name.split("_")[1]))
