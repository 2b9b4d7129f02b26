"""The ``hpsearch`` command line: a thin layer over the Python API (``hpsearch.api``)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from hpsearch import __version__
from hpsearch.allocator import keep_freed_memory
from hpsearch.argtypes import Parser, comma_choices, duration
from hpsearch.errors import HpsearchError

FLAG_OVERRIDES = {  # flag attribute -> recipe key it sets
    "num_samples": "budget.num_samples", "max_epochs": "budget.max_epochs", "seed": "seed",
    "cpus_per_trial": "budget.cpus_per_trial", "gpus_per_trial": "budget.gpus_per_trial",
    "time_budget": "budget.time_budget_s",
}
PRESETS = ("fast", "balanced", "best")  # hpsearch.presets.PRESETS (a test keeps them equal; that module loads torch)
EXIT_CODES = """exit codes: 0 done; 1 the search or a stage failed (every trial failed, a full disk); 2 bad input
(recipe, data, arguments, a damaged run directory); 130 interrupted by Ctrl-C; 143 stopped by SIGTERM
(after 130 or 143, `hpsearch resume RUN_DIR` continues). --debug shows full tracebacks."""


def command(commands, name: str, help: str, **kwargs) -> argparse.ArgumentParser:
    """A sub-command that also accepts --debug after its name."""
    parser = commands.add_parser(name, help=help, description=help, **kwargs)
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def ensemble_methods() -> Sequence[str]:
    from hpsearch.ensemble import METHODS
    from hpsearch.rundir import BEST_SINGLE

    return [m for m in METHODS if m != BEST_SINGLE]  # what parse_methods accepts


def report_formats() -> Sequence[str]:
    from hpsearch.report import FORMATS

    return FORMATS


def recipe_reference() -> str:
    from hpsearch.reference import text

    return text()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="hpsearch", description=__doc__, epilog=EXIT_CODES,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"hpsearch {__version__}",
                        help="show the version and exit")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do (hpsearch "
                                     "COMMAND --help for its options)")
    add_search_commands(commands)
    add_after_search_commands(commands)
    add_report_commands(commands)
    return parser


def add_search_commands(commands) -> None:
    tune = command(commands, "tune", help="run a hyperparameter search from a recipe, or from --data with a preset",
                   epilog_factory=recipe_reference, formatter_class=argparse.RawDescriptionHelpFormatter)
    tune.add_argument("recipe", type=Path, nargs="?", help="recipe file, e.g. recipes/digits.py (or use --data)")
    tune.add_argument("--out", type=Path, help="run directory (default: runs/<recipe>-<time>)")
    tune.add_argument("--num-samples", type=int, help="number of trials (budget.num_samples)")
    tune.add_argument("--max-epochs", type=int, help="epochs per trial at most (budget.max_epochs)")
    tune.add_argument("--seed", type=int, help="base seed of split, sampler and trials")
    tune.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a recipe value, e.g. --set train.batch_size=32 (repeatable; fields below)")
    tune.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (budget.cpus_per_trial)")
    tune.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractional allowed")
    tune.add_argument("--address", help="join an existing Ray cluster (e.g. 127.0.0.1:6379)")
    tune.add_argument("--resume", action="store_true", help="continue the search in --out")
    tune.add_argument("--warm-start", nargs="+", type=Path, metavar="RUN_DIR",
                      help="add the finished trials of earlier runs to the new study before its first trial")
    tune.add_argument("--storage", help="where Ray keeps trial state and checkpoints: a folder every node can "
                      "reach, or a URI Ray Tune supports (default: the run directory)")
    tune.add_argument("--data", help="no recipe: an image folder (<class>/<image>), an archive (.tgz, .zip), a URL "
                      "or 'digits'; a preset chooses the whole search from the data and this machine")
    tune.add_argument("--preset", choices=PRESETS, help="with --data: fast (default), balanced or best")
    tune.add_argument("--time-budget", type=duration, metavar="DURATION",
                      help="end the search after this long (e.g. 30m, 1h; budget.time_budget_s); what finished "
                           "is kept")

    resume = command(commands, "resume", help="continue an interrupted search in its run directory, or extend it")
    resume.add_argument("run_dir", type=Path, help="the run directory of the search")
    resume.add_argument("--address", help="join an existing Ray cluster")
    resume.add_argument("--num-samples", type=int, help="extend the search to this many trials in all")
    resume.add_argument("--set", dest="overrides", action="append", default=[], metavar="budget.KEY=VALUE",
                        help="change a budget value that a resume may change (e.g. budget.time_budget_s=600)")

    init = command(commands, "init", help="print a recipe for an image folder, chosen by a preset "
                   "(hpsearch init PATH > recipe.py); it runs the same search as tune --data PATH")
    init.add_argument("data", help="an image folder (<class>/<image>), an archive (.tgz, .zip), a URL or 'digits'")
    init.add_argument("--preset", choices=PRESETS, default="fast", help="fast (default), balanced or best")
    init.add_argument("--time-budget", type=duration, metavar="DURATION",
                      help="the search's time budget (default: the preset's)")


def add_after_search_commands(commands) -> None:
    ensemble = command(commands, "ensemble", help="combine the top trials of a finished search")
    ensemble.add_argument("run_dir", type=Path, help="the run directory of a finished search")
    ensemble.add_argument("--top-k", type=int, default=5, help="trials to combine (default 5)")
    ensemble.add_argument("--methods", default="average,vote,greedy,stacking,bagging,seeds,boosting,library,soup",
                          type=comma_choices(ensemble_methods, "methods"),
                          help="comma-separated subset of average,vote,greedy,stacking,bagging,seeds,boosting,library,"
                               "soup (the best single trial is always scored too; seeds: the best configuration "
                               "from --members random seeds; library: greedy selection over the top trials and the "
                               "members bagging, seeds and boosting trained)")
    ensemble.add_argument("--tta", default=None, metavar="VIEWS",
                          help="test-time views tried for every model: flip,shift,scale, or none (default: flip if "
                               "the best trial trained with flips, else shift)")
    ensemble.add_argument("--folds", type=int, default=5, help="folds of the out-of-fold validation scores")
    ensemble.add_argument("--members", type=int, default=5,
                          help="members of bagging, seeds (the best trial and members-1 runs) and boosting")
    ensemble.add_argument("--member-epochs", type=int, help="epochs per trained member (default: the best trial's)")
    ensemble.add_argument("--cpus-per-member", type=float, default=1.0, help="CPUs per trained member (default 1)")
    ensemble.add_argument("--address", help="Ray cluster for bagging and seeds members")

    evaluate = command(commands, "evaluate", help="the one test-set evaluation: best trial vs every ensemble")
    evaluate.add_argument("run_dir", type=Path, help="the run directory of a finished search")

    predict = command(commands, "predict", help="classify image files or folders with a run's model, or with a "
                      "file written by `hpsearch export`")
    predict.add_argument("run_dir", type=Path, metavar="RUN_DIR|MODEL_FILE",
                         help="a run directory, or an exported .onnx or .pt file (then no run directory is needed)")
    predict.add_argument("paths", type=Path, nargs="+", help="image files or folders (searched recursively)")
    predict.add_argument("--model", default="best",
                         help="best (the best trial), auto (the model validation chose), a method (e.g. greedy: "
                              "its variant validation chose), or an exact name (e.g. greedy+tta)")
    predict.add_argument("--output", type=Path, help="write the table as CSV here (default: print it)")

    distill = command(commands, "distill", help="train one student network on an ensemble's soft targets")
    distill.add_argument("run_dir", type=Path, help="the run directory of a finished search")
    distill.add_argument("--teacher", default="auto",
                         help="auto (the model validation chose), best, a method (its chosen variant) or an exact name")
    distill.add_argument("--student", default="best",
                         help="best (the best trial's configuration, starting from its weights) or a timm backbone")
    distill.add_argument("--epochs", type=int, help="training epochs (default: the best trial's)")
    distill.add_argument("--alpha", type=float, default=0.7, help="weight of the teacher's targets (default 0.7)")
    distill.add_argument("--temperature", type=float, default=2.0, help="softening of both distributions")

    refit = command(commands, "refit", help="retrain the chosen model's trials on training + validation images")
    refit.add_argument("run_dir", type=Path, help="the run directory of a finished search")
    refit.add_argument("--model", default="auto",
                       help="auto (the model validation chose), best, a method (its chosen variant) or an exact name "
                            "of a model made of trials")

    export = command(commands, "export", help="write one model of a run as a single deployable file")
    export.add_argument("run_dir", type=Path, help="the run directory of a finished search")
    export.add_argument("--model", default="auto",
                        help="auto (the model validation chose), best, a method (its chosen variant), or an exact name")
    export.add_argument("--format", default="onnx", help="onnx (default) or torchscript")
    export.add_argument("--output", type=Path, help="the file to write (default: RUN_DIR/<model>.onnx or .pt)")

    sweep = command(commands, "sweep", help="vary regularization knobs one at a time around the best trial")
    sweep.add_argument("run_dir", type=Path, help="the run directory of a finished search")
    sweep.add_argument("--param", action="append", required=True, metavar="NAME",
                       help="knob to vary (repeatable): weight_decay, l1, drop_rate, drop_path_rate, "
                            "label_smoothing, mixup_alpha, cutmix_alpha, aug_strength")
    sweep.add_argument("--values", action="append", default=[], metavar="V1,V2,...",
                       help="values for the --param before it (default: a preset grid)")
    sweep.add_argument("--epochs", type=int, help="epochs per run (default: the best trial's)")
    sweep.add_argument("--cpus-per-run", type=float, default=1.0, help="CPUs per run (default 1)")
    sweep.add_argument("--address", help="Ray cluster to run on")


def add_report_commands(commands) -> None:
    report = command(commands, "report", help="tables, plots and index.html for a run")
    report.add_argument("run_dir", type=Path, help="the run directory of a finished search")
    report.add_argument("--formats", default="md,csv,tex,html,json", type=comma_choices(report_formats, "formats"),
                        help="comma-separated subset of md,csv,tex,html,json")

    compare = command(commands, "compare", help="one table across runs")
    compare.add_argument("run_dirs", type=Path, nargs="+", help="run directories to compare")
    compare.add_argument("--output", type=Path, help="write the table here (.csv, .md, .tex, .html or .json)")

    show = command(commands, "show", help="write PNGs of training images and of augmented versions of one")
    show.add_argument("recipe", type=Path, help="recipe file, e.g. recipes/flowers.py")
    show.add_argument("--out", type=Path, help="folder for the PNGs (default: runs/<recipe>-show)")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a recipe value (repeatable), as for tune")
    show.add_argument("--strength", type=float, help="augmentation strength to show (default: the recipe's, "
                      "or 1.0 where the recipe turns augmentation off)")
    show.add_argument("--seed", type=int, help="which images to show")


def overrides_from(args: argparse.Namespace) -> list[str]:
    flags = [f"{key}={getattr(args, attr)}" for attr, key in FLAG_OVERRIDES.items() if getattr(args, attr) is not None]
    if getattr(args, "warm_start", None):
        for path in args.warm_start:
            if "," in str(path):
                raise HpsearchError(f"--warm-start takes folders whose names have no comma, but got {str(path)!r}.")
        flags.append("warm_start=" + ",".join(str(p.expanduser().resolve()) for p in args.warm_start))
    return list(args.overrides) + flags


def cmd_tune(args: argparse.Namespace) -> int:
    from hpsearch import api

    if (args.recipe is None) == (args.data is None):
        raise HpsearchError("tune takes a recipe file or --data PATH (an image folder, an archive or digits), "
                            "not both and not neither.")
    if args.preset and not args.data:
        raise HpsearchError("--preset goes with --data PATH; a recipe file sets its own search.")
    if args.resume and args.out is None:
        raise HpsearchError("--resume needs the run directory to continue: add --out RUN_DIR.")
    recipe = api.prepare(args.recipe, data=args.data, preset=args.preset or "fast", assignments=overrides_from(args))
    args.out = args.out or api.default_run_dir(recipe)  # so that an interruption can name it
    return search_and_summarize(lambda: api.tune(recipe, args.out, resume=args.resume, address=args.address,
                                                 storage=args.storage))


def cmd_resume(args: argparse.Namespace) -> int:
    from hpsearch import api

    return search_and_summarize(lambda: api.resume(args.run_dir, num_samples=args.num_samples, address=args.address,
                                                   assignments=args.overrides))


def cmd_init(args: argparse.Namespace) -> int:
    from hpsearch import api

    print(api.init(args.data, args.preset, time_budget_s=args.time_budget), end="")
    return 0


def search_and_summarize(search: Callable) -> int:
    from hpsearch.search.tune import best_trial

    start = time.perf_counter()
    run = search()
    trials = run.trials
    print_summary(trials, best_trial(trials), run.path, time.perf_counter() - start)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from hpsearch.data import BatchAugment, load_subset, prepare_split
    from hpsearch.data.preview import plot_augmented, plot_samples
    from hpsearch.recipe import load_recipe
    from hpsearch.runinfo import ensure_writable

    recipe = load_recipe(args.recipe, args.overrides + ([f"seed={args.seed}"] if args.seed is not None else []))
    out = args.out or Path("runs") / f"{recipe.name}-show"
    ensure_writable(out)
    split, classes = prepare_split(recipe.data, recipe.seed, out)
    train = load_subset(recipe.data, split, "train")
    t = recipe.train
    strength = args.strength if args.strength is not None else (t.aug_strength or 1.0)
    augment = BatchAugment(t.flip, t.rotation, t.zoom, t.translate, strength)
    samples = plot_samples(train, classes, out / "samples.png", seed=recipe.seed)
    augmented = plot_augmented(train, augment, out / "augmented.png", seed=recipe.seed)
    counts = split[split["subset"] == "train"]["class"].value_counts().sort_index().to_dict()
    print(f"{len(split)} images, {len(classes)} classes; training images per class: {counts}")
    print(f"Wrote {samples} and {augmented} (augmentation strength {strength:g}).")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from hpsearch.api import Run

    table = Run(args.run_dir).ensemble(args.methods, top_k=args.top_k, members=args.members,
                                       member_epochs=args.member_epochs, cpus_per_member=args.cpus_per_member,
                                       address=args.address, tta=args.tta, folds=args.folds)
    shown = ["model", "members", "relative_cost", "val_accuracy", "val_accuracy_oof", "val_log_loss_oof",
             "temperature", "oof_gain_vs_best_single", "chosen"]
    print(f"\n{table[shown].to_string(index=False, float_format=lambda v: f'{v:.4f}')}\n\n"
          f"val_accuracy is in-sample for methods fit on validation predictions; val_accuracy_oof is out of fold "
          f"(refit without the images it scores) and chooses the model (chosen).\nWrote {args.run_dir}/ensembles/"
          f"<model>.json and {args.run_dir}/ensembles.csv. Next: hpsearch evaluate {args.run_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hpsearch.api import Run
    from hpsearch.rundir import TEST_SUMMARY_COLUMNS

    table = Run(args.run_dir).evaluate()
    print(table[TEST_SUMMARY_COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\nWrote {args.run_dir}/test_metrics.csv and {args.run_dir}/evaluation/ (confusion, per-class tables).")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from hpsearch.api import Run
    from hpsearch.evaluation.deployed import EXPORT_SUFFIXES, predict_exported
    from hpsearch.evaluation.predict import image_files
    from hpsearch.io import atomic_write

    if args.output is not None and args.output.is_dir():
        raise HpsearchError(f"--output names a folder ({str(args.output)!r}); give a file name, e.g. "
                            f"--output {args.output / 'predictions.csv'}.")
    if args.run_dir.is_file() and args.run_dir.suffix in EXPORT_SUFFIXES:
        table = predict_exported(args.run_dir, image_files(args.paths))
    else:
        table = Run(args.run_dir).predict(list(args.paths), args.model)
    if args.output:
        atomic_write(args.output, table.to_csv(index=False))
        print(f"Wrote {len(table)} predictions to {args.output}")
    else:
        print(table[["path", "class", "probability"]].to_string(index=False))
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from hpsearch.api import Run

    record = Run(args.run_dir).distill(args.teacher, args.student, epochs=args.epochs, alpha=args.alpha,
                                       temperature=args.temperature)
    print(f"distilled: val_accuracy {record.val_accuracy:.4f} (teacher {record.details.get('teacher')}); saved as "
          f"{args.run_dir}/ensembles/distilled and added to ensembles.csv. Next: hpsearch evaluate {args.run_dir}")
    return 0


def cmd_refit(args: argparse.Namespace) -> int:
    from hpsearch.api import Run
    from hpsearch.ensemble import chosen_model
    from hpsearch.rundir import REFIT_SUFFIX, RunDir

    record = Run(args.run_dir).refit(args.model)
    trials = ", ".join(str(m.trial_id) for m, folder in zip(record.members, record.refit, strict=True) if folder)
    chosen = chosen_model(RunDir(args.run_dir)) == record.name.removesuffix(REFIT_SUFFIX)
    use = "--model auto (predict, export) now ships it" if chosen else f"use it with --model {record.name}"
    print(f"{record.name}: trial(s) {trials} retrained on training + validation images, each for the epochs "
          f"validation chose; saved under {args.run_dir}/refit/; {use}. Next: hpsearch evaluate {args.run_dir}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hpsearch.api import Run

    path = Run(args.run_dir).export(args.model, args.format, args.output)
    print(f"Wrote {path}: uint8 images (batch, height, width, channels) in, class probabilities out. "
          f"Use it with: hpsearch predict {path} IMAGES...")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from hpsearch.api import Run
    from hpsearch.search.sweep import parse_knobs

    grid = dict(parse_knobs(args.param, args.values))  # checked before the run directory is opened
    tables = Run(args.run_dir).sweep(grid, epochs=args.epochs, cpus_per_run=args.cpus_per_run, address=args.address)
    for param, table in tables.items():
        print(f"\n{param}:\n{table.to_string(index=False, float_format=lambda v: f'{v:.4f}')}")
    print(f"\nWrote {args.run_dir}/sweeps/<param>.csv")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from hpsearch.api import Run

    report = Run(args.run_dir).report(args.formats)
    print(f"Wrote {report.folder}/ ({len(report.sections)} sections) and {report.folder / 'index.html'}")
    for skipped in report.skipped:
        print(f"  skipped: {skipped}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from hpsearch.api import compare
    from hpsearch.io import atomic_write
    from hpsearch.report import FORMATS, render

    fmt = args.output.suffix.lstrip(".") if args.output else None
    if args.output and fmt not in FORMATS:
        raise HpsearchError(f"--output must end in {', '.join('.' + f for f in FORMATS)}, but got "
                            f"{str(args.output)!r}.")
    table = compare(*args.run_dirs)
    if args.output:
        atomic_write(args.output, render(table, fmt))
        print(f"Wrote {args.output}")
    print(table.to_string(index=False))
    return 0


def print_summary(trials, best, run_dir: Path, seconds: float) -> None:
    from hpsearch.rundir import from_elsewhere, parameter_columns, study_url

    imported = int(from_elsewhere(trials).sum())
    trials = trials[~from_elsewhere(trials)]
    counts = trials["status"].value_counts().to_dict()
    early = int(trials["stopped_early"].astype(str).str.lower().eq("true").sum())
    params = {k: best[k] for k in parameter_columns(trials) if k in best and best[k] == best[k]}
    extra = f" (and {imported} finished trials of earlier runs, not trained again)" if imported else ""
    print(f"\nSearch finished in {seconds:.0f} s: {len(trials)} trials ({counts}), {early} stopped early{extra}.")
    print(f"Best trial {best['trial_id']} (Optuna #{best['optuna_trial']}): val_acc={best['val_acc']:.4f} "
          f"val_loss={best['val_loss']:.4f} at epoch {int(best['best_epoch'])}")
    for key, value in params.items():
        print(f"    {key} = {value}")
    print(f"Results in {run_dir}/: trials.csv, history.csv, study.db, trials/<trial_id>/")
    print(f"Dashboard: optuna-dashboard {study_url(run_dir)}")


DISK_ERRORS = {errno.ENOSPC: "Free some disk space, or choose another --out.",
               errno.EACCES: "Choose a folder you can write to with --out.",
               errno.EROFS: "The file system is read-only; choose another --out.",
               errno.EDQUOT: "The disk quota is exhausted; free space or choose another --out."}
COMMANDS = {"tune": cmd_tune, "resume": cmd_resume, "init": cmd_init, "show": cmd_show, "ensemble": cmd_ensemble,
            "evaluate": cmd_evaluate, "predict": cmd_predict, "distill": cmd_distill, "refit": cmd_refit,
            "export": cmd_export, "sweep": cmd_sweep, "report": cmd_report, "compare": cmd_compare}


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[list[int]]:
    """While a command runs, SIGTERM acts as Ctrl-C (Ray Tune stops gracefully and what finished is exported);
    the list it yields records that it came."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        signal.raise_signal(signal.SIGINT)

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, handler) if in_main else None
    try:
        yield received
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record, not the stream of the first call.

    ``main`` may run many times in one process (tests, notebooks) with ``sys.stderr`` swapped in between;
    a handler holding the first stream would write into a closed file.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def show_logs(debug: bool) -> None:
    """The command line shows hpsearch's log records (the library only emits them)."""
    logger = logging.getLogger("hpsearch")
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    args = build_parser().parse_args(argv)
    show_logs(args.debug)
    keep_freed_memory()  # the entry point owns the process's allocator (hpsearch/allocator.py)
    if not args.debug:
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # TPE's group=True
    with sigterm_as_interrupt() as terminated:
        code = run_command(args)
    return 128 + signal.SIGTERM if terminated else code


def run_command(args: argparse.Namespace) -> int:
    """Run one command; problems the user can fix end in one line and an exit code (``--debug``: traceback)."""
    try:
        return COMMANDS[args.command](args)
    except HpsearchError as err:
        if args.debug:
            raise
        print(f"hpsearch {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:
        if args.debug or err.errno not in DISK_ERRORS:
            raise
        where = f" {err.filename}" if err.filename else ""
        print(f"hpsearch {args.command}: error: cannot write{where}: {err.strerror}. {DISK_ERRORS[err.errno]} "
              f"Finished work already on disk is kept.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        run_dir = getattr(args, "out", None) or getattr(args, "run_dir", None) or "RUN_DIR"
        print(f"\nInterrupted. Finished work is kept; continue a search with: hpsearch resume {run_dir}",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
