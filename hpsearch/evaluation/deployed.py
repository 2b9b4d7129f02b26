"""A file written by ``hpsearch export``, used on its own: ONNX Runtime (or TorchScript), no Ray, no run directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch.data import DataConfig
from hpsearch.data.sources import CorruptImages, decode_images, warn_corrupt
from hpsearch.errors import HpsearchError

EXPORT_SUFFIXES = (".onnx", ".pt")


class DeployedModel:
    """The exported model at ``path``: its class names, image size and channels, and ``predict_proba``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise HpsearchError(f"{str(self.path)!r} does not exist.")
        try:
            meta = self._load_onnx() if self.path.suffix == ".onnx" else self._load_torchscript()
            self.classes = list(json.loads(meta["classes"]))
            self.image_size, self.channels = int(meta["image_size"]), int(meta["channels"])
            self.name = meta.get("model", self.path.stem)
        except HpsearchError:
            raise
        except Exception as err:  # noqa: BLE001  a damaged or foreign file fails in the runtime's own ways
            raise HpsearchError(f"{str(self.path)!r} is damaged or not a model written by `hpsearch export` "
                                f"({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}). "
                                f"Export it again.") from None

    def _load_onnx(self) -> dict[str, str]:
        import onnxruntime

        self._session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        meta = self._session.get_modelmeta().custom_metadata_map
        if meta.get("producer") != "hpsearch":
            raise ValueError("no hpsearch metadata in the file")
        return meta

    def _load_torchscript(self) -> dict[str, str]:
        import torch

        extra = {"hpsearch.json": ""}
        self._module = torch.jit.load(str(self.path), map_location="cpu", _extra_files=extra)
        return json.loads(extra["hpsearch.json"])

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """uint8 images (batch, height, width, channels) at the model's size -> class probabilities."""
        images = np.ascontiguousarray(images, dtype=np.uint8)
        if hasattr(self, "_session"):
            return self._session.run(None, {"images": images})[0]
        import torch

        if not images.flags.writeable:  # e.g. memory-mapped: torch would warn that it cannot guard the buffer
            images = images.copy()
        with torch.no_grad():
            return self._module(torch.from_numpy(images)).numpy()


def decode_for(model: DeployedModel, files: list[Path]) -> tuple[list[Path], np.ndarray]:
    """The files the model can read, decoded to its size and channels as (batch, height, width, channels)."""
    config = DataConfig(source="folder", root=".", image_size=model.image_size, grayscale=model.channels == 1)
    ids = [str(Path(f).resolve()) for f in files]
    try:
        images = decode_images([Path(i) for i in ids], ids, config)
    except CorruptImages as bad:
        if len(bad.ids) == len(ids):
            raise HpsearchError(f"None of the {len(ids)} file(s) given could be read as an image.") from None
        warn_corrupt(bad.ids)
        keep = [i for i, sample in enumerate(ids) if sample not in set(bad.ids)]
        files, images = [files[i] for i in keep], bad.partial[keep]
    return files, images.transpose(0, 2, 3, 1)


def predict_exported(path: Path, files: list[Path], batch_size: int = 64) -> pd.DataFrame:
    """One row per readable image, as ``predict`` on a run directory gives it."""
    model = DeployedModel(path)
    files, images = decode_for(model, files)
    probs = np.concatenate([model.predict_proba(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
    table = pd.DataFrame({"path": [str(f) for f in files], "class": [model.classes[i] for i in probs.argmax(1)],
                          "probability": probs.max(1), "model": model.name})
    for index, name in enumerate(model.classes):
        table[f"p_{name}"] = probs[:, index]
    return table
