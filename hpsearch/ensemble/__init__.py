"""Models made of a search's best trials: the registry of methods, members trained for them, soups, and refits.

Every method is fit on validation predictions (or, for bagging, seeds and boosting, on the training split), with and
without test-time augmentation, scored out of fold, and saved as an ``EnsembleRecord``; ``evaluate``,
``predict`` and ``export`` apply any of them the same way. ``refit_run`` retrains a chosen model's trials on
training + validation images, a model that nothing ranks and ``--model auto`` ships.
"""

from hpsearch.ensemble import distill, members, soups  # noqa: F401  (register their methods)
from hpsearch.ensemble.build import BOOTSTRAP_RESAMPLES, bootstrap_interval, build_ensembles, parse_methods, parse_views
from hpsearch.ensemble.distill import distill_run
from hpsearch.ensemble.methods import (
    METHODS,
    EnsembleMethod,
    EnsembleOptions,
    FitContext,
    Fitted,
    ProbabilityMethod,
    SingleModelMethod,
    combiner_input,
    ensemble_combiner,
    ensemble_torch_combiner,
    get_method,
    make_record,
    record_models,
    register_method,
    used_positions,
)
from hpsearch.ensemble.refit import refit_run
from hpsearch.ensemble.selection import chosen_model, ordered_records, resolve_model, shipped_model

__all__ = ["BOOTSTRAP_RESAMPLES", "METHODS", "EnsembleMethod", "EnsembleOptions", "FitContext", "Fitted",
           "ProbabilityMethod", "SingleModelMethod", "bootstrap_interval", "build_ensembles", "chosen_model",
           "combiner_input", "distill_run", "ensemble_combiner", "ensemble_torch_combiner", "get_method",
           "make_record", "ordered_records", "parse_methods", "parse_views", "record_models", "refit_run",
           "register_method", "resolve_model", "shipped_model", "used_positions"]
