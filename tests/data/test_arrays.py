"""Images in memory prepared like image files: layouts, value ranges, colour modes and sizes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hpsearch.data.arrays import images_to_uint8
from hpsearch.errors import DataError


def test_layouts_and_value_ranges_give_the_same_pixels():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 10, 12, 3), dtype=np.uint8)
    expected = images_to_uint8(rgb, 3, 16)
    assert expected.shape == (3, 3, 16, 16) and expected.dtype == np.uint8
    for batch in (rgb.transpose(0, 3, 1, 2), rgb / 255.0, rgb.astype(np.int64), [Image.fromarray(i) for i in rgb]):
        np.testing.assert_array_equal(images_to_uint8(batch, 3, 16), expected)


def test_colour_and_grey_are_converted_to_the_run_channels():
    grey = np.full((2, 8, 8), 200, dtype=np.uint8)
    as_rgb = images_to_uint8(grey, 3, 8)
    assert as_rgb.shape == (2, 3, 8, 8) and (as_rgb == 200).all()
    rgba = np.zeros((1, 8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    as_grey = images_to_uint8(rgba, 1, 4)
    assert as_grey.shape == (1, 1, 4, 4) and (as_grey == round(0.299 * 255)).all()  # PIL's luma of pure red


def test_a_file_and_the_same_array_decode_identically(tmp_path):
    from hpsearch.data import DataConfig
    from hpsearch.data.sources import FileListSource

    image = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "x.png")
    config = DataConfig(source="folder", root=str(tmp_path), image_size=24)
    source = FileListSource(config, [tmp_path / "x.png"])
    from_file = source.decode(list(source.list().ids))
    np.testing.assert_array_equal(images_to_uint8([image], 3, 24), from_file)


@pytest.mark.parametrize("images, fragment", [
    (np.array([[[np.nan]]]), "NaN"),
    (np.full((1, 4, 4), -0.5), "float images must be in \\[0, 1\\]"),
    (np.zeros((1, 4, 4), dtype=bool), "dtype bool"),
    (np.zeros((2, 2, 4, 4, 3)), "a batch of images is"),
    (np.zeros((8, 8, 3), dtype=np.uint8), "looks like one colour image"),
])
def test_bad_images_are_one_line_errors(images, fragment):
    with pytest.raises(DataError, match=f"(?i){fragment}"):
        images_to_uint8(images, 3, 8)


def test_a_sixteen_bit_file_decodes_as_its_eight_bit_copy_not_white(tmp_path):
    """PIL's convert clips 16-bit pixels at 255 (a 16-bit PNG came out 99.6% white); they are scaled instead,
    in files and in PIL images given in memory alike."""
    from hpsearch.data import DataConfig
    from hpsearch.data.sources import FileListSource

    eight = np.random.default_rng(2).integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "deep.png")  # 0..255 -> 0..65535
    Image.fromarray(eight).save(tmp_path / "flat.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    config = DataConfig(source="folder", root=str(tmp_path), image_size=24)
    source = FileListSource(config, [tmp_path / "deep.png", tmp_path / "flat.png"])
    deep, flat = source.decode(list(source.list().ids))
    np.testing.assert_array_equal(deep, flat)  # the 8-bit copy exactly: 257 * v / 257
    assert deep.mean() < 200  # not saturated
    in_memory = images_to_uint8([Image.open(tmp_path / "deep.png"), Image.fromarray(eight)], 1, 24)
    np.testing.assert_array_equal(in_memory[0], in_memory[1])
    as_int32 = [Image.fromarray(eight.astype(np.int32) * k) for k in (257, 1)]  # mode I: 16-bit, or 8-bit values
    np.testing.assert_array_equal(images_to_uint8(as_int32, 1, 24), in_memory)


def test_pixels_without_a_fixed_range_are_refused_not_guessed(tmp_path):
    from hpsearch.data import DataConfig
    from hpsearch.data.sources import CorruptImages, FileListSource

    floats = Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8))  # mode F
    with pytest.raises(DataError, match="image 0: 32-bit float pixels .* no fixed range"):
        images_to_uint8([floats], 3, 8)
    with pytest.raises(DataError, match="image 0: integer pixels from -1 to -1 have no fixed range"):
        images_to_uint8([Image.fromarray(np.full((8, 8), -1, dtype=np.int32))], 3, 8)
    floats.save(tmp_path / "f.tiff")
    Image.fromarray(np.full((8, 8), 70000, dtype=np.int32)).save(tmp_path / "i.tiff")
    source = FileListSource(DataConfig(source="folder", root=str(tmp_path), image_size=8),
                            [tmp_path / "f.tiff", tmp_path / "i.tiff"])
    with pytest.raises(CorruptImages) as bad:  # unreadable, as a broken file is: listed and left out
        source.decode(list(source.list().ids))
    assert len(bad.value.ids) == 2
