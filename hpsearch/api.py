"""The Python API: ``tune(...) -> Run``, ``Run(path)``, ``resume``, ``compare`` and ``init``.

Everything the command line does goes through these functions, so a notebook and a shell leave identical
run directories. Nothing here sets process-wide state (threads, seeds, warning filters, plotting backends,
logging handlers): hpsearch logs to the ``hpsearch`` logger and leaves showing it to the caller.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hpsearch.config import field_types
from hpsearch.errors import HpsearchError, RecipeError, did_you_mean
from hpsearch.io import read_json
from hpsearch.options import is_declared
from hpsearch.recipe import OPTIONS, SCALARS, SECTIONS, Recipe, load_recipe
from hpsearch.rundir import CONFIG_FILE, HISTORY_COLUMNS, RECIPE_FILE, RunDir, read_trials

if TYPE_CHECKING:
    from hpsearch.report.report import Report
    from hpsearch.rundir.records import EnsembleRecord

RecipeLike = str | Path | ModuleType | Recipe
# what ensemble() fits
ENSEMBLE_METHODS = ("average", "vote", "greedy", "stacking", "bagging", "seeds", "boosting", "library", "soup")


def value_text(value: Any) -> str:
    """A value as the text of ``--set key=text`` (what ``config.json`` records and a resume re-applies)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return value
    if is_declared(value) or not isinstance(value, (list, tuple)):
        return repr(value)
    return repr([str(v) if isinstance(v, Path) else v for v in value])


def override_texts(overrides: dict[str, Any]) -> list[str]:
    """Keyword overrides as ``--set`` texts: ``num_samples=8`` (a field name, found in its section),
    ``seed=1``/``name="x"``, or a section's dict (``train=dict(batch_size=32)``, ``options=dict(lr=Range(...))``).
    Data fields go by name (``image_size=24``): ``tune``'s ``data=`` names the images of a preset."""
    owner = {}
    for section, cls in SECTIONS.items():
        for field in field_types(cls):
            owner.setdefault(field, section)
    texts = []
    for key, value in overrides.items():
        if key in (*SECTIONS, OPTIONS) and isinstance(value, dict):
            texts += [f"{key}.{k}={value_text(v)}" for k, v in value.items()]
        elif key in SCALARS:
            texts.append(f"{key}={value_text(value)}")
        elif key in owner:
            texts.append(f"{owner[key]}.{key}={value_text(value)}")
        else:
            raise RecipeError(f"Unknown override {key}={value!r}.{did_you_mean(key, [*owner, *SCALARS])} Pass a field "
                              f"of data, train or budget (num_samples=8), seed, name, or a section dict "
                              f"(options=dict(backbones=Choice(...))).")
    return texts


def prepare(recipe: RecipeLike | None = None, *, data: str | Path | None = None, preset: str = "fast",
            assignments: Sequence[str] = (), **overrides: Any) -> Recipe:
    """The recipe a search would run: a file, a module, a ``Recipe``, or (``data=``) a preset for a dataset."""
    texts = [*assignments, *override_texts(overrides)]
    if (recipe is None) == (data is None):
        raise HpsearchError("Give a recipe (a file, a module or hpsearch.Recipe) or data= (an image folder, an "
                            "archive or 'digits'), not both and not neither.")
    if data is not None:
        from hpsearch.presets import preset_recipe, split_time_budget

        budget_s, texts = split_time_budget(texts)
        return preset_recipe(data, preset, time_budget_s=budget_s).with_overrides(texts)
    if isinstance(recipe, Recipe):
        return recipe.with_overrides(texts)
    if isinstance(recipe, ModuleType):
        if not getattr(recipe, "__file__", None):
            raise RecipeError(f"Module {recipe.__name__!r} has no file to load the recipe from.")
        recipe = recipe.__file__
    return load_recipe(recipe, texts)


def default_run_dir(recipe: Recipe) -> Path:
    return Path("runs") / f"{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def tune(recipe: RecipeLike | None = None, out: str | Path | None = None, *, data: str | Path | None = None,
         preset: str = "fast", resume: bool = False, address: str | None = None, storage: str | None = None,
         verbose: int = 1, assignments: Sequence[str] = (), **overrides: Any) -> Run:
    """Run a search and return its ``Run`` when it ends (Ray Tune + Optuna TPE + ASHA).

    ``recipe``: a recipe file, an imported recipe module or a ``Recipe``; or ``data=`` an image folder, an
    archive, a URL or ``"digits"``, with a ``preset`` (``fast``, ``balanced``, ``best``). ``out``: the run
    directory (default ``runs/<name>-<time>``). ``overrides``: ``num_samples=8``, ``max_epochs=4``,
    ``image_size=24``, ``seed=1``, ``time_budget_s=600``, or whole sections (``options=dict(...)``);
    ``assignments``: the same as ``--set`` texts. ``resume=True`` continues the search in ``out``.
    """
    from hpsearch.search.tune import SearchOptions, run_search

    chosen = prepare(recipe, data=data, preset=preset, assignments=assignments, **overrides)
    run_dir = Path(out) if out is not None else default_run_dir(chosen)
    if resume and out is None:
        raise HpsearchError("resume=True needs the run directory to continue: pass out=RUN_DIR.")
    options = SearchOptions(address=address, resume=resume, overrides=list(chosen.overrides), verbose=verbose,
                            storage=storage)
    run_search(chosen, run_dir, options)
    return Run(run_dir)


def resume(run_dir: str | Path, *, num_samples: int | None = None, address: str | None = None, verbose: int = 1,
           assignments: Sequence[str] = (), **budget: Any) -> Run:
    """Continue an interrupted search in ``run_dir``, or extend it (more trials, more time: ``num_samples``,
    ``time_budget_s=...``); the recipe and overrides are the ones the run directory recorded."""
    from hpsearch.search.tune import SearchOptions, run_search

    run_dir = Path(run_dir)
    config_path, recipe_path = run_dir / CONFIG_FILE, run_dir / RECIPE_FILE
    if not config_path.is_file() or not recipe_path.is_file():
        raise HpsearchError(f"{str(run_dir)!r} is not an hpsearch run directory (no {CONFIG_FILE} and "
                            f"{RECIPE_FILE}).")
    config = read_json(config_path)
    extra = [*assignments, *(f"budget.{k}={value_text(v)}" for k, v in budget.items())]
    extra += [f"budget.num_samples={num_samples}"] if num_samples else []
    overrides = [*config.get("overrides", []), *extra]
    recipe = load_recipe(config["recipe"], overrides, source=recipe_path.read_text())
    options = SearchOptions(address=address, resume=True, overrides=overrides, verbose=verbose,
                            storage=config.get("storage"))
    run_search(recipe, run_dir, options)
    return Run(run_dir)


def init(data: str | Path, preset: str = "fast", *, time_budget_s: float | None = None) -> str:
    """The text of a recipe file that runs the same search as ``tune(data=data, preset=preset)``."""
    from hpsearch.presets import preset_recipe

    return preset_recipe(data, preset, time_budget_s=time_budget_s).source


def compare(*runs: Run | str | Path) -> pd.DataFrame:
    """One row per run: best trial, best ensemble (chosen on validation), test accuracies with CIs."""
    from hpsearch.report import compare_runs

    if not runs:
        raise HpsearchError("compare() needs at least one run (a Run or a run directory).")
    return compare_runs([run.path if isinstance(run, Run) else Path(run) for run in runs])


def names_from(value: str | Iterable[str] | None, parse, default: Sequence[str]) -> list[str]:
    """A list of method or format names from ``None`` (the default), ``"a,b"`` or ``["a", "b"]``, checked."""
    if value is None:
        return list(default)
    return parse(value if isinstance(value, str) else ",".join(value))


class Run:
    """A run directory: the search's tables as DataFrames, and every stage after the search.

    ``Run(path)`` opens one that ``tune`` wrote. Each stage writes into the directory, as the command line does.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        RunDir(self.path)  # a folder without trials.csv is refused here, with how to make one

    def __repr__(self) -> str:
        trials = self.trials
        done = trials[trials["status"] == "completed"]
        best = f", best val_acc={done['val_acc'].max():.4f}" if done["val_acc"].notna().any() else ""
        return f"Run({str(self.path)!r}: {len(trials)} trials{best})"

    @property
    def trials(self) -> pd.DataFrame:
        """``trials.csv``: one row per trial (parameters, status, epochs, best val_acc/val_loss, ...)."""
        return read_trials(self.path)

    @property
    def history(self) -> pd.DataFrame:
        """``history.csv``: one row per trial per epoch (train/val loss and accuracy, learning rate)."""
        history = RunDir(self.path).history()
        return history if history is not None else pd.DataFrame(columns=HISTORY_COLUMNS)

    @property
    def best(self) -> pd.Series:
        """The best trial's row (highest validation accuracy, lower loss on ties)."""
        return RunDir(self.path).ranked_trials().iloc[0]

    @property
    def config(self) -> dict[str, Any]:
        """``config.json``: the resolved recipe the search ran."""
        return RunDir(self.path).config

    def ensemble(self, methods: str | Iterable[str] | None = None, *, top_k: int = 5, members: int = 5,
                 member_epochs: int | None = None, cpus_per_member: float = 1.0, address: str | None = None,
                 tta: str | Iterable[str] | None = None, folds: int = 5) -> pd.DataFrame:
        """Combine the ``top_k`` trials with each method (default: ``ENSEMBLE_METHODS``) and score every model
        with and without test-time views (``tta``: ``"flip,shift"``, ``"none"``; default: flip if the best trial
        trained with flips, else shift), out of fold (``folds``); returns ``ensembles.csv``, whose ``chosen``
        row is the model validation picks. Bagging and boosting train ``members`` new models, seeds ``members - 1``."""
        from hpsearch.ensemble import EnsembleOptions, build_ensembles, parse_methods, parse_views

        if top_k < 1 or members < 1 or folds < 2:
            raise HpsearchError(f"top_k and members must be at least 1 and folds at least 2, but got {top_k=}, "
                                f"{members=}, {folds=}.")
        views = None if tta is None else parse_views(tta if isinstance(tta, str) else ",".join(tta) or "none")
        options = EnsembleOptions(top_k=top_k, members=members, member_epochs=member_epochs,
                                  cpus_per_member=cpus_per_member, address=address, tta=views, folds=folds)
        return build_ensembles(self.path, names_from(methods, parse_methods, ENSEMBLE_METHODS), options)

    def distill(self, teacher: str = "auto", student: str = "best", *, epochs: int | None = None,
                alpha: float = 0.7, temperature: float = 2.0) -> EnsembleRecord:
        """Train one ``student`` network (``best``: the best trial's configuration) on the soft targets of
        ``teacher`` (``auto``: the model validation chose); it is saved as the model ``distilled`` and added to
        ``ensembles.csv``. Returns its record (``.val_accuracy``, ``.details``)."""
        from hpsearch.ensemble import distill_run

        return distill_run(self.path, teacher, student, epochs, alpha, temperature)

    def refit(self, model: str = "auto") -> EnsembleRecord:
        """Retrain the trials of ``model`` (``auto``: the model validation chose; ``best``, a method or an exact
        name) on training + validation images, each for the epochs validation chose; saved as ``<model>+refit``,
        which ``evaluate`` scores and ``predict``/``export`` with ``model="auto"`` ship. Returns its record."""
        from hpsearch.ensemble import refit_run

        return refit_run(self.path, model)

    def export(self, model: str = "auto", format: str = "onnx", output: str | Path | None = None) -> Path:
        """Write ``model`` (``auto``, ``best``, a method or an exact name) as one ONNX or TorchScript file that
        takes uint8 images (batch, height, width, channels) and returns class probabilities; returns its path."""
        from hpsearch.evaluation.export import export_model

        return export_model(self.path, model, format, None if output is None else Path(output))

    def evaluate(self) -> pd.DataFrame:
        """The one read of the test split: every model's test metrics (``test_metrics.csv``)."""
        from hpsearch.evaluation import evaluate_run

        return evaluate_run(self.path)

    def sweep(self, params: str | Iterable[str] | dict[str, Sequence[float] | None], *, epochs: int | None = None,
              cpus_per_run: float = 1.0, address: str | None = None) -> dict[str, pd.DataFrame]:
        """Retrain the best configuration with one regularization knob varied at a time: ``"drop_rate"``,
        ``["drop_rate", "l1"]`` (preset grids) or ``{"drop_rate": [0, 0.5], "l1": None}``."""
        from hpsearch.search.sweep import parse_knobs, run_sweep

        if isinstance(params, str):
            params = [params]
        grid = dict(params) if isinstance(params, dict) else dict.fromkeys(params)
        ordered = sorted(grid, key=lambda name: grid[name] is None)  # knobs with values first: --values pair up
        values = [",".join(str(v) for v in grid[name]) for name in ordered if grid[name] is not None]
        return run_sweep(self.path, parse_knobs(ordered, values), epochs=epochs, cpus_per_run=cpus_per_run,
                         address=address)

    def report(self, formats: str | Iterable[str] | None = None) -> Report:
        """Tables, plots and ``report/index.html``; returns the report (``.folder``, ``.sections``, ``.skipped``)."""
        from hpsearch.report import FORMATS, parse_formats, write_report

        return write_report(self.path, names_from(formats, parse_formats, FORMATS))

    def predict(self, inputs: Any, model: str = "best") -> pd.DataFrame:
        """Classes and probabilities for image files or folders (a path or a list of them), or for images in
        memory: a NumPy batch (N, H, W), (N, H, W, C) or (N, C, H, W) of uint8 or floats in [0, 1], or a
        list of arrays / PIL images. ``model``: ``best`` (the best trial), ``auto`` (the model validation
        chose), a method built with ``ensemble`` (its chosen variant) or an exact name (``greedy+tta``)."""
        from hpsearch.evaluation.predict import predict_arrays, predict_files

        if isinstance(inputs, (str, Path)):
            return predict_files(self.path, [Path(inputs)], model)
        if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(i, (str, Path)) for i in inputs):
            return predict_files(self.path, [Path(i) for i in inputs], model)
        if isinstance(inputs, np.ndarray) or isinstance(inputs, (list, tuple)):
            return predict_arrays(self.path, inputs, model)
        return predict_arrays(self.path, [inputs], model)
