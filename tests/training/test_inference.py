"""Inference on a CPU runs in micro-batches that glibc can reuse; the probabilities do not depend on them."""

from __future__ import annotations

import numpy as np
import torch

from hpsearch.data import ImageArrays
from hpsearch.models import TutorialCNN
from hpsearch.training import Normalizer, inference_layout, predict_proba
from hpsearch.training.inference import CPU_BATCH_BYTES, cpu_inference_batch


def test_micro_batches_shrink_with_the_image_and_never_exceed_the_batch_size():
    assert cpu_inference_batch((3, 160, 160), 256) * 4 * 3 * 160 * 160 <= CPU_BATCH_BYTES
    assert cpu_inference_batch((3, 160, 160), 256) < cpu_inference_batch((3, 64, 64), 256) < 256
    assert cpu_inference_batch((1, 8, 8), 256) == 256 and cpu_inference_batch((1, 8, 8), 32) == 32
    assert cpu_inference_batch((3, 4096, 4096), 256) == 1  # one image at a time, however large


def test_predict_proba_on_a_cpu_feeds_micro_batches_and_gives_the_same_probabilities():
    torch.manual_seed(0)
    model = TutorialCNN(num_classes=3, in_chans=3, img_size=128).eval()
    images = np.random.default_rng(0).integers(0, 256, (13, 3, 128, 128), dtype=np.uint8)
    arrays = ImageArrays(images, np.zeros(13, dtype=np.int64))
    seen = []
    model.register_forward_pre_hook(lambda module, inputs: seen.append(len(inputs[0])))
    normalize = Normalizer((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    probs = predict_proba(model, arrays, normalize, 256, torch.device("cpu"))
    assert max(seen) == cpu_inference_batch((3, 128, 128), 256) < 13 and sum(seen) == 13
    with torch.no_grad():
        whole = torch.softmax(model(normalize(torch.from_numpy(images).float() / 255)), dim=1).numpy()
    np.testing.assert_allclose(probs, whole, atol=1e-5)


def test_test_time_views_can_reuse_the_plain_probabilities_and_skip_that_pass():
    torch.manual_seed(0)
    model = TutorialCNN(num_classes=3, in_chans=3, img_size=16).eval()
    images = np.random.default_rng(1).integers(0, 256, (9, 3, 16, 16), dtype=np.uint8)
    arrays = ImageArrays(images, np.zeros(9, dtype=np.int64))
    normalize, cpu = Normalizer((0.5,) * 3, (0.5,) * 3), torch.device("cpu")
    plain = predict_proba(model, arrays, normalize, 4, cpu)
    seen: list[int] = []
    model.register_forward_pre_hook(lambda module, inputs: seen.append(len(inputs[0])))
    for views, passes in ((("flip",), 1), (("shift", "scale"), 3)):  # shift: left and right
        seen.clear()
        reused = predict_proba(model, arrays, normalize, 4, cpu, views, plain=plain)
        assert sum(seen) == 9 * passes  # no pass for the plain view
        np.testing.assert_allclose(reused, predict_proba(model, arrays, normalize, 4, cpu, views), atol=1e-6)
    flipped = predict_proba(model, arrays, normalize, 4, cpu, ("flip",), plain=plain)
    np.testing.assert_allclose(predict_proba(model, arrays, normalize, 4, cpu, ("flip",), plain=plain * 0),
                               flipped - plain / 2, atol=1e-6)  # the given plain probabilities are what it averages


def test_the_inference_layout_is_nhwc_in_eval_mode_and_gives_the_same_probabilities():
    torch.manual_seed(0)
    model = TutorialCNN(num_classes=3, in_chans=3, img_size=32)
    images = np.random.default_rng(2).integers(0, 256, (7, 3, 32, 32), dtype=np.uint8)
    arrays, normalize = ImageArrays(images, np.zeros(7, dtype=np.int64)), Normalizer((0.5,) * 3, (0.5,) * 3)
    plain = predict_proba(model, arrays, normalize, 4, torch.device("cpu"), ("flip",))
    assert inference_layout(model) is model and not model.training
    convolutions = [p for p in model.parameters() if p.dim() == 4]
    assert convolutions and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                                for p in convolutions)
    np.testing.assert_allclose(predict_proba(model, arrays, normalize, 4, torch.device("cpu"), ("flip",)), plain,
                               atol=1e-5)
