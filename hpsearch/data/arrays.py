"""Images already in memory (NumPy arrays, PIL images), prepared exactly as image files are decoded."""

from __future__ import annotations

from typing import Any

import numpy as np

from hpsearch.errors import DataError

SIXTEEN_BIT_SCALE = 65535 / 255  # 16-bit pixels to 8 bits: 65535 -> 255, as image viewers show them


def to_pixel_mode(image: Any, mode: str) -> Any:
    """A PIL ``image`` converted to ``mode`` ("L" or "RGB") with 8-bit pixels, as every image hpsearch reads is.

    16-bit images (PIL modes ``I;16*``; mode ``I`` with values above 255, as some Pillow versions open 16-bit PNGs)
    are scaled from 0..65535; PIL's own ``convert`` clips them at 255, which turns a 16-bit photograph almost
    entirely white. Raises ValueError for pixels with no fixed range: 32-bit floats (mode ``F``), negative values,
    or values above 65535.
    """
    from PIL import Image

    if image.mode == "F":
        raise ValueError("32-bit float pixels (PIL mode F) have no fixed range; save the images as 8 or 16 bits")
    if image.mode == "I" or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        low, high = (values.min(), values.max()) if values.size else (0.0, 0.0)
        if low < 0 or high > 65535:
            raise ValueError(f"integer pixels from {low:g} to {high:g} have no fixed range; save the images as 8 or "
                             f"16 bits")
        sixteen_bit = image.mode != "I" or high > 255
        image = Image.fromarray(np.round(values / (SIXTEEN_BIT_SCALE if sixteen_bit else 1.0)).astype(np.uint8), "L")
    return image.convert(mode)


def _as_uint8(array: np.ndarray, where: str) -> np.ndarray:
    """uint8 pixels from uint8/integer 0..255 or float 0..1 values."""
    if array.dtype == np.uint8:
        return array
    if array.size and not np.isfinite(array).all():
        raise DataError(f"{where} holds NaN or infinite values.")
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if np.issubdtype(array.dtype, np.floating):
        if low < 0.0 or high > 1.0 + 1e-6:
            raise DataError(f"{where}: float images must be in [0, 1], but the values run from {low:g} to {high:g}; "
                            f"divide by their maximum (e.g. images / 255), or pass uint8.")
        return np.round(array * 255.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        if low < 0 or high > 255:
            raise DataError(f"{where}: integer images must be in 0..255, but got {low:g}..{high:g}.")
        return array.astype(np.uint8)
    raise DataError(f"{where} has dtype {array.dtype}; images are uint8 (0..255) or floats (0..1).")


def _channels_last(image: np.ndarray, where: str) -> np.ndarray:
    """(H, W) or (H, W, C) from (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[-1] in (1, 3, 4):
        return image[..., 0] if image.shape[-1] == 1 else image
    if image.ndim == 3 and image.shape[0] in (1, 3, 4):
        return _channels_last(np.moveaxis(image, 0, -1), where)
    raise DataError(f"{where} has shape {image.shape}; an image is (H, W), (H, W, C) or (C, H, W) with C = 1, 3 or 4.")


def _items(images: Any) -> list[Any]:
    """One entry per image: the first axis of an array is the batch (a single image goes in a list)."""
    if isinstance(images, np.ndarray):
        if images.ndim == 3 and images.shape[-1] in (3, 4) and min(images.shape[:2]) > 4:
            raise DataError(f"An array of shape {images.shape} looks like one colour image (H, W, C), not a batch of "
                            f"grey ones; pass [image] or image[None].")
        if images.ndim not in (3, 4):
            raise DataError(f"A batch of images is a (N, H, W), (N, H, W, C) or (N, C, H, W) array, but got shape "
                            f"{images.shape}; wrap a single image in a list: [image].")
        return list(images)
    items = list(images)
    if not items:
        raise DataError("No images given.")
    return items


def images_to_uint8(images: Any, in_chans: int, size: int) -> np.ndarray:
    """uint8 (N, in_chans, size, size) from arrays or PIL images, converted and resized with PIL as files are."""
    from PIL import Image

    mode = "L" if in_chans == 1 else "RGB"
    out = np.zeros((0, in_chans, size, size), dtype=np.uint8)
    rows = []
    for index, item in enumerate(_items(images)):
        where = f"image {index}"
        if not isinstance(item, Image.Image):
            array = _channels_last(_as_uint8(np.asarray(item), where), where)
            item = Image.fromarray(np.ascontiguousarray(array))
        try:
            converted = to_pixel_mode(item, mode)
        except ValueError as error:
            raise DataError(f"{where}: {error}.") from None
        resized = np.asarray(converted.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
        rows.append(resized[None] if resized.ndim == 2 else resized.transpose(2, 0, 1))
    return np.stack(rows) if rows else out
