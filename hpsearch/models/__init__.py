"""Backbones: a factory over timm and the tutorial's CNN registered in timm's registry."""

from hpsearch.models.baseline import TutorialCNN
from hpsearch.models.factory import check_backbone, count_parameters, create_model, min_input_size

__all__ = ["TutorialCNN", "check_backbone", "count_parameters", "create_model", "min_input_size"]
