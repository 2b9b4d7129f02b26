"""``hpsearch predict``: classes and probabilities for new image files, with the run's preprocessing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch.data import ImageArrays
from hpsearch.data.sources import IMAGE_EXTENSIONS, CorruptImages, FolderSource, warn_corrupt
from hpsearch.errors import HpsearchError
from hpsearch.evaluation.evaluate import load_ensemble
from hpsearch.evaluation.rundir import RunDir, model_probs
from hpsearch.io import read_json


def image_files(paths: list[Path]) -> list[Path]:
    """The image files named, and those inside named folders (recursively), in a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
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
    source = FolderSource(replace(config, source="folder", root="/", url=None, grayscale=config.in_chans == 1))
    ids = [str(f.resolve()) for f in files]
    try:
        return files, source.decode(ids)
    except CorruptImages as bad:
        warn_corrupt(bad.ids)
        keep = [i for i, sample in enumerate(ids) if sample not in set(bad.ids)]
        return [files[i] for i in keep], bad.partial[keep]


def predict_files(run_dir: Path, paths: list[Path], model: str = "best") -> pd.DataFrame:
    run = RunDir(run_dir)
    files, images = decode_files(run, image_files(paths))
    arrays = ImageArrays(images, np.zeros(len(files), dtype=np.int64))
    if model == "best":
        probs = model_probs(run.trial_model(run.ranked_trials().iloc[0]["trial_id"]), arrays, run)[0]
    else:
        record_path = run.path / "ensembles" / f"{model}.json"
        if not record_path.is_file():
            raise HpsearchError(f"No ensemble {model!r} in {str(run.path)!r}; run `hpsearch ensemble {run.path} "
                                f"--methods {model}` first, or use --model best.")
        members, estimator = load_ensemble(run, read_json(record_path), run.arrays("val").labels)
        stack = np.stack([model_probs(m, arrays, run)[0] for m in members])
        probs = stack[0] if estimator is None else estimator.predict_proba(stack)
    table = pd.DataFrame({"path": [str(f) for f in files], "class": [run.classes[i] for i in probs.argmax(1)],
                          "probability": probs.max(1)})
    for index, name in enumerate(run.classes):
        table[f"p_{name}"] = probs[:, index]
    return table
