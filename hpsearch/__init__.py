"""hpsearch: hyperparameter search over timm backbones with Ray Tune and Optuna."""

__version__ = "0.1.0"
