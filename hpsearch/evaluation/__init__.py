"""After the search and the ensembles: the one test-set evaluation, its metrics, and predictions.

Nothing here imports Ray or Optuna: a finished run is evaluated and used from its run directory alone.
"""

from hpsearch.evaluation.evaluate import ModelOutput, Predictor, chosen_model, evaluate_run, ordered_records
from hpsearch.evaluation.metrics import accuracy_ci, classification_metrics, expected_calibration_error, mcnemar
from hpsearch.evaluation.predict import predict_files, resolve_model

__all__ = ["ModelOutput", "Predictor", "accuracy_ci", "chosen_model", "classification_metrics", "evaluate_run",
           "expected_calibration_error", "mcnemar", "ordered_records", "predict_files", "resolve_model"]
