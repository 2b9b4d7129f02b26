"""The tutorial's baseline CNN, registered in timm's model registry as ``tutorial_cnn``.

Keras original: Rescaling, then three Conv2D(3x3, same, ReLU) + MaxPooling2D blocks of 16, 32 and 64
filters, optional Dropout, Flatten, Dense(128, ReLU), Dense(num_classes).
"""

from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

__all__ = ["TutorialCNN"]


class TutorialCNN(nn.Module):
    """Three conv + max-pool blocks, a 128-unit dense layer, then the classifier."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 180,
        widths: tuple[int, ...] = (16, 32, 64),
        hidden: int = 128,
        drop_rate: float = 0.0,
        global_pool: str = "flatten",
    ):
        super().__init__()
        img_size = min(img_size) if isinstance(img_size, (tuple, list)) else img_size  # timm passes (H, W)
        if img_size < 2 ** len(widths):
            raise ValueError(f"tutorial_cnn needs img_size >= {2 ** len(widths)}, but got {img_size=}")
        self.num_classes, self.drop_rate, self.global_pool = num_classes, drop_rate, global_pool
        layers, chans = [], in_chans
        for width in widths:
            layers += [nn.Conv2d(chans, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            chans = width
        self.features = nn.Sequential(*layers)
        side = img_size // 2 ** len(widths)
        self.flat_features = chans * side * side
        self.head_drop = nn.Dropout(drop_rate)
        self.fc1 = nn.Linear(self.flat_features, hidden)
        self.num_features = self.head_hidden_size = hidden
        self.fc = nn.Linear(hidden, num_classes) if num_classes > 0 else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.relu(self.fc1(self.head_drop(torch.flatten(x, 1))))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


default_cfgs = generate_default_cfgs({
    "tutorial_cnn.untrained": {
        "url": "", "num_classes": 1000, "input_size": (3, 180, 180), "pool_size": None,
        "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "first_conv": "features.0", "classifier": "fc",
        "fixed_input_size": True, "min_input_size": (3, 8, 8),
    },
})


@register_model
def tutorial_cnn(pretrained: bool = False, **kwargs) -> TutorialCNN:
    """The image-classification tutorial's 3-conv baseline (about 60% val accuracy on flowers)."""
    return build_model_with_cfg(TutorialCNN, "tutorial_cnn", pretrained, **kwargs)
