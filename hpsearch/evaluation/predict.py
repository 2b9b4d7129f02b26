"""``hpsearch predict``: classes and probabilities for new image files, with the run's preprocessing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpsearch.data import ImageArrays
from hpsearch.data.arrays import images_to_uint8
from hpsearch.data.download import listed
from hpsearch.data.sources import IMAGE_EXTENSIONS, CorruptImages, FileListSource, is_image_file, warn_corrupt
from hpsearch.ensemble import shipped_model
from hpsearch.errors import HpsearchError
from hpsearch.evaluation.evaluate import Predictor
from hpsearch.rundir import EnsembleRecord, RunDir


def image_files(paths: list[Path]) -> list[Path]:
    """The image files named, and those inside named folders (recursively), in a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*")
                            if is_image_file(p) and all(map(listed, p.relative_to(path).parents)))
        elif path.is_file():
            files.append(path)
        else:
            raise HpsearchError(f"{str(path)!r} is neither an image file nor a folder.")
    if not files:
        raise HpsearchError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in {[str(p) for p in paths]}.")
    return files


def decode_files(run: RunDir, files: list[Path]) -> tuple[list[Path], np.ndarray]:
    """Decode with the run's image size and colour mode; unreadable files are skipped with a warning."""
    config = run.data_config
    source = FileListSource(replace(config, grayscale=config.in_chans == 1), files)
    ids = list(source.list().ids)
    try:
        return files, source.decode(ids)
    except CorruptImages as bad:
        unreadable = set(bad.ids)
        if len(unreadable) == len(ids):
            raise HpsearchError(f"None of the {len(ids)} file(s) given could be read as an image "
                                f"(corrupt, truncated, or larger than data.max_image_pixels).") from None
        warn_corrupt(bad.ids)
        keep = [i for i, sample in enumerate(ids) if sample not in unreadable]
        return [files[i] for i in keep], bad.partial[keep]


def predict_files(run_dir: Path, paths: list[Path], model: str = "best") -> pd.DataFrame:
    """One row per readable image: path, predicted class, its (calibrated) probability and every class's."""
    run = RunDir(run_dir)
    record = shipped_model(run, model)
    files, images = decode_files(run, image_files(paths))
    return prediction_table(run, images, record, {"path": [str(f) for f in files]})


def predict_arrays(run_dir: Path, images: Any, model: str = "best") -> pd.DataFrame:
    """Like ``predict_files`` for images in memory (see ``images_to_uint8``); rows are numbered by ``index``."""
    run = RunDir(run_dir)
    record = shipped_model(run, model)
    in_chans, size = run.image_shape[0], run.data_config.stored_size  # as files are decoded (then centre-cropped)
    pixels = images_to_uint8(images, in_chans, size)
    return prediction_table(run, pixels, record, {"index": np.arange(len(pixels))})


def prediction_table(run: RunDir, images: np.ndarray, record: EnsembleRecord, first: dict[str, Any]) -> pd.DataFrame:
    predictor = Predictor(run, ImageArrays(images, np.zeros(len(images), dtype=np.int64)))
    _, output = predictor.model(record, run.arrays("val").labels)
    probs = output.probs
    table = pd.DataFrame({**first, "class": [run.classes[i] for i in probs.argmax(1)], "probability": probs.max(1),
                          "model": record.name})
    for index, name in enumerate(run.classes):
        table[f"p_{name}"] = probs[:, index]
    return table
