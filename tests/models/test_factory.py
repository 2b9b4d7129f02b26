from __future__ import annotations

import pytest
import timm
import torch
from timm.models import register_model

from hpsearch.errors import RecipeError
from hpsearch.models import TutorialCNN, count_parameters, create_model


def test_tutorial_cnn_is_in_timms_registry():
    assert "tutorial_cnn" in timm.list_models("tutorial*")
    model = timm.create_model("tutorial_cnn", num_classes=5, img_size=180)
    assert isinstance(model, TutorialCNN)
    # Keras summary of the tutorial model: 3,989,285 parameters for 180x180x3 input and 5 classes
    assert count_parameters(model) == 3_989_285


def test_tutorial_cnn_layers_follow_the_tutorial():
    model = create_model("tutorial_cnn", num_classes=3, in_chans=1, img_size=16, drop_rate=0.2)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()) == 3
    assert model.fc1.out_features == 128 and model.fc.out_features == 3
    assert model.head_drop.p == 0.2
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 3)
    assert model.forward_head(model.forward_features(torch.zeros(1, 1, 16, 16)), pre_logits=True).shape == (1, 128)


@pytest.mark.parametrize("name", ["resnet10t", "mobilenetv3_small_050", "efficientnet_lite0"])
def test_factory_builds_timm_backbones_with_regularization(name):
    model = create_model(name, num_classes=4, in_chans=1, img_size=32, drop_rate=0.3, drop_path_rate=0.1)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 4)
    assert model.drop_rate == 0.3


def test_drop_path_is_ignored_with_a_warning_where_unsupported():
    with pytest.warns(UserWarning, match="no stochastic depth"):
        model = create_model("vgg11", num_classes=2, drop_path_rate=0.1)
    assert model.get_classifier().out_features == 2


@register_model
def _test_dropout_default_cnn(pretrained: bool = False, drop_rate: float = 0.3, **kwargs) -> TutorialCNN:
    """A model whose own default dropout is not 0, so that keeping the default is observable."""
    return TutorialCNN(num_classes=kwargs.get("num_classes", 10), img_size=16, drop_rate=drop_rate)


def test_zero_or_none_kwargs_keep_model_defaults():
    for unset in (None, 0.0):
        model = create_model("_test_dropout_default_cnn", num_classes=2, drop_rate=unset, drop_path_rate=0.0)
        assert model.drop_rate == 0.3, unset
    assert create_model("_test_dropout_default_cnn", num_classes=2, drop_rate=0.1).drop_rate == 0.1


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(RecipeError, match=r"Unknown backbone 'resnet181'.*'resnet18'"):
        create_model("resnet181", num_classes=2)
