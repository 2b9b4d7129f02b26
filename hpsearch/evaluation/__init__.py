"""After the search: ensembles of the best trials, the one test-set evaluation, and predictions."""

from hpsearch.evaluation.ensemble import METHODS, EnsembleOptions, build_ensembles, parse_methods
from hpsearch.evaluation.evaluate import evaluate_run
from hpsearch.evaluation.metrics import bootstrap_ci, classification_metrics, expected_calibration_error, mcnemar
from hpsearch.evaluation.predict import predict_files
from hpsearch.evaluation.rundir import RunDir, SavedModel

__all__ = ["METHODS", "EnsembleOptions", "RunDir", "SavedModel", "bootstrap_ci", "build_ensembles",
           "classification_metrics", "evaluate_run", "expected_calibration_error", "mcnemar", "parse_methods",
           "predict_files"]
