"""Backbones: a factory over timm and the tutorial's CNN registered in timm's registry."""

from hpsearch.models.baseline import TutorialCNN
from hpsearch.models.factory import check_backbone, check_input_size, count_parameters, create_model, min_input_size
from hpsearch.models.freezing import apply_frozen_mode, block_groups, check_frozen_blocks, set_trainable
from hpsearch.models.pretrained import PIP_LITE0, PretrainedMappingError, load_weights, map_by_order

__all__ = ["PIP_LITE0", "PretrainedMappingError", "TutorialCNN", "apply_frozen_mode", "block_groups", "check_backbone",
           "check_frozen_blocks", "check_input_size", "count_parameters", "create_model", "load_weights",
           "map_by_order", "min_input_size", "set_trainable"]
