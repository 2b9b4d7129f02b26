"""Which saved model a name means, and which one validation chose: shared by evaluate, predict, export, distill."""

from __future__ import annotations

import logging

from hpsearch.ensemble.methods import METHODS
from hpsearch.errors import HpsearchError, did_you_mean
from hpsearch.rundir import BEST_SINGLE, REFIT_SUFFIX, TTA_SUFFIX, EnsembleRecord, Member, RunDir, rank_models

log = logging.getLogger(__name__)


def ordered_records(run: RunDir) -> list[EnsembleRecord]:
    """The run's models: registered methods in registry order (plain before +tta), then any others by name.
    A run whose ensembles predate the best-single record gets one (plain, no temperature)."""
    order = {name: i for i, name in enumerate(METHODS)}  # METHODS is kept in table order
    found = sorted(run.records().values(),
                   key=lambda r: (order.get(r.method, len(order)), r.method, bool(r.tta), bool(r.refit)))
    if not any(r.name == BEST_SINGLE for r in found):
        best = run.best_model()
        member = Member(best.name, str(best.folder.relative_to(run.path)), 1.0, best.trial_id)
        found.insert(0, EnsembleRecord(BEST_SINGLE, "SingleModel", (member,), float(best.info["val_acc"]),
                                       float(best.info["val_loss"])))
    return found


def chosen_model(run: RunDir) -> str | None:
    """The model validation chose (best out-of-fold accuracy, then log-loss), if ``ensemble`` ran (never a refit:
    it has no validation score)."""
    table = run.ensembles_table()
    return None if table is None or table.empty else str(rank_models(table).iloc[0]["model"])


def resolve_model(run: RunDir, name: str) -> EnsembleRecord:
    """The record ``--model`` names: ``auto`` (validation's choice), ``best`` (the best trial), a method (its
    variant that validation chose, with or without test-time augmentation), or an exact name (``greedy+tta``)."""
    table = run.ensembles_table()
    if name == "auto":
        chosen = chosen_model(run)
        if chosen is None:
            raise HpsearchError(f"--model auto picks among ensembles: run `hpsearch ensemble {run.path}` first.")
        name = chosen
    name = BEST_SINGLE if name == "best" else name
    if table is not None and name in set(table["method"]) and "variant_chosen" in table:
        name = str(table[(table["method"] == name) & table["variant_chosen"].astype(bool)].iloc[0]["model"])
    records = {r.name: r for r in ordered_records(run)}
    if name not in records:
        raise missing_model(run, name, records)
    return records[name]


def missing_model(run: RunDir, name: str, records: dict[str, EnsembleRecord]) -> HpsearchError:
    """The one-line error for a model name that ``run`` does not have: what was built, and the command that
    builds it if ``name`` is a method's model (or the refit of a built one), else the names to choose from."""
    base = name.removesuffix(REFIT_SUFFIX)
    method = METHODS.get(base.removesuffix(TTA_SUFFIX))
    if base != name and base in records:
        fix = (f"run `hpsearch refit {run.path} --model {base}` first, or name {base}" if records[base].of_trials
               else f"only models of search trials can be refit, and {base} is not one; name {base}")
    elif method is not None:
        fix = f"run `{method.build_command(str(run.path))}` first, or name best"
    else:
        fix = (f"name best, auto or a built model.{did_you_mean(name, records)} Methods `hpsearch ensemble` builds: "
               f"{', '.join(METHODS)}")
    return HpsearchError(f"{run.no_record(name)}; {fix}.")


def shipped_model(run: RunDir, name: str) -> EnsembleRecord:
    """The record ``--model`` names for a model that leaves the run (``predict``, ``export``): ``resolve_model``'s,
    except that ``auto`` ships the chosen model's refit where ``hpsearch refit`` made one of it as it is now."""
    record = resolve_model(run, name)
    refit = run.records().get(f"{record.name}{REFIT_SUFFIX}") if name == "auto" else None
    if refit is None:
        return record
    if not refit.same_model(record):
        log.warning("%s was refit before %s was rebuilt; shipping %s itself (run `hpsearch refit %s` again to ship "
                    "its refit)", record.name, record.name, record.name, run.path)
        return record
    return refit
