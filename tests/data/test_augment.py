from __future__ import annotations

import torch

from hpsearch.data import BatchAugment


def batch(seed=0):
    return torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_same_seed_same_augmentation_other_seed_differs():
    augment = BatchAugment(flip=True, rotation=0.1, zoom=0.2, translate=0.1)
    x = batch()
    a = augment(x, torch.Generator().manual_seed(3))
    b = augment(x, torch.Generator().manual_seed(3))
    c = augment(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == x.shape


def test_zero_strength_is_identity():
    x = batch()
    assert BatchAugment(strength=0.0)(x, torch.Generator()) is x


def test_flip_only_mirrors_exactly_or_keeps():
    x = batch()
    out = BatchAugment(flip=True, rotation=0.0, zoom=0.0)(x, torch.Generator().manual_seed(0))
    for original, augmented in zip(x, out, strict=True):
        same = torch.allclose(augmented, original, atol=1e-5)
        mirrored = torch.allclose(augmented, original.flip(-1), atol=1e-5)
        assert same or mirrored
    flips = [torch.allclose(a, o.flip(-1), atol=1e-5) for a, o in zip(out, x, strict=True)]
    assert any(flips) and not all(flips)


def test_rotation_moves_pixels_but_keeps_range():
    x = batch()
    out = BatchAugment(flip=False, rotation=0.25, zoom=0.0)(x, torch.Generator().manual_seed(1))
    assert not torch.allclose(out, x)
    assert out.min() >= -1e-5 and out.max() <= 1 + 1e-5


def test_sampled_matrices_respect_the_ranges():
    augment = BatchAugment(flip=False, rotation=0.0, zoom=0.2, translate=0.0)
    theta = augment.sample_affine(1000, torch.Generator().manual_seed(0))
    scale = theta[:, 0, 0]
    assert scale.min() >= 0.8 - 1e-6 and scale.max() <= 1.2 + 1e-6
    assert torch.all(theta[:, 0, 1] == 0) and torch.all(theta[:, :, 2] == 0)


def test_random_resized_crops_come_out_at_the_crop_size_and_differ():
    images = torch.rand(6, 3, 23, 23)
    out = BatchAugment(flip=False, rotation=0.0, zoom=0.0, strength=0.0, crop=20)(images,
                                                                                   torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, 20, 20)
    again = BatchAugment(flip=False, rotation=0.0, zoom=0.0, strength=0.0, crop=20)(images,
                                                                                     torch.Generator().manual_seed(1))
    assert not torch.allclose(out, again)  # each batch is cropped anew


def test_a_full_size_crop_without_augmentation_is_the_resampled_image():
    images = torch.rand(2, 1, 16, 16)
    full = BatchAugment(flip=False, rotation=0.0, zoom=0.0, strength=0.0, crop=16, crop_scale=(1.0, 1.0),
                        crop_ratio=(1.0, 1.0))(images, torch.Generator().manual_seed(0))
    torch.testing.assert_close(full, images, atol=1e-5, rtol=0)


def test_the_centre_crop_is_the_middle_square():
    from hpsearch.training.inference import center_crop

    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    assert torch.equal(center_crop(x, 4), x[..., 1:5, 1:5]) and center_crop(x, None) is x
