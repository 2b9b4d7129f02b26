"""After the search and the ensembles: the one test-set evaluation, its metrics, and predictions.

Nothing here imports Ray or Optuna: a finished run is evaluated and used from its run directory alone.
"""

from hpsearch.evaluation.evaluate import ModelOutput, Predictor, evaluate_run
from hpsearch.evaluation.metrics import accuracy_ci, classification_metrics, expected_calibration_error, mcnemar
from hpsearch.evaluation.predict import predict_files

__all__ = ["ModelOutput", "Predictor", "accuracy_ci", "classification_metrics", "evaluate_run",
           "expected_calibration_error", "mcnemar", "predict_files"]
