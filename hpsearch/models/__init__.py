"""Backbones: a factory over timm and the tutorial's CNN registered in timm's registry."""

from hpsearch.models.baseline import TutorialCNN
from hpsearch.models.factory import check_backbone, check_input_size, count_parameters, create_model, min_input_size
from hpsearch.models.freezing import apply_frozen_mode, block_groups, check_frozen_blocks, set_trainable
from hpsearch.models.pretrained import (
    PIP_ANY,
    PIP_LITE0,
    PIP_WEIGHTS,
    PretrainedMappingError,
    load_weights,
    map_by_order,
    pip_weights_for,
)

__all__ = ["PIP_ANY", "PIP_LITE0", "PIP_WEIGHTS", "PretrainedMappingError", "TutorialCNN", "apply_frozen_mode",
           "block_groups", "check_backbone", "check_frozen_blocks", "check_input_size", "count_parameters",
           "create_model", "load_weights", "map_by_order", "min_input_size", "pip_weights_for", "set_trainable"]
