"""``hpsearch export``: one file a user can deploy, for any model of a run (a trial, an ensemble, a soup, a student).

The file takes uint8 RGB (or grey) images, shape (batch, height, width, channels), at the run's image size, and
returns calibrated class probabilities: normalization, test-time views, every member that carries weight, the
ensemble's combination rule and its temperature are all inside one graph. Class names and the image size travel in
its metadata.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ensembles import Temperature
from hpsearch.ensemble import ensemble_torch_combiner, record_models, shipped_model, used_positions
from hpsearch.errors import HpsearchError
from hpsearch.rundir import EnsembleRecord, RunDir
from hpsearch.training import view_names
from hpsearch.training.inference import apply_view, center_crop

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
ONNX_OPSET = 20  # GridSample and AffineGrid (test-time shifts and zooms)


class ExportedModel(nn.Module):
    """uint8 images (batch, height, width, channels) -> calibrated class probabilities (batch, classes)."""

    def __init__(self, members: list[nn.Module], normalizers: list[nn.Module], views: tuple[str, ...],
                 combiner: nn.Module, temperature: float, crop: int | None = None,
                 positions: list[int] | None = None, count: int | None = None):
        """``positions``: each member's place among the ``count`` models the combiner takes (default: all of
        them, in order); the places no member fills belong to models of weight 0, which the graph leaves out."""
        super().__init__()
        self.crop = crop
        self.members, self.normalizers = nn.ModuleList(members), nn.ModuleList(normalizers)
        self.positions = list(range(len(members))) if positions is None else list(positions)
        self.count = len(members) if count is None else count
        self.views = view_names(views)
        self.combiner, self.temperature = combiner, Temperature(temperature)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = center_crop(images.permute(0, 3, 1, 2).to(torch.float32) / 255.0, self.crop)
        outputs = {}
        for position, member, normalize in zip(self.positions, self.members, self.normalizers, strict=True):
            normalized = normalize(x)
            views = [torch.softmax(member(apply_view(normalized, view)), dim=1) for view in self.views]
            outputs[position] = torch.stack(views).mean(dim=0)
        first = outputs[self.positions[0]]
        filler = torch.full_like(first, 1.0 / first.shape[1])  # weight 0 in the combination
        return self.temperature(self.combiner(torch.stack([outputs.get(i, filler) for i in range(self.count)])))


def exported_model(run: RunDir, record: EnsembleRecord) -> ExportedModel:
    """The record's whole model as one module (members in eval mode, on the CPU)."""
    models, used = record_models(run, record), used_positions(record)
    combiner = ensemble_torch_combiner(run, record, run.arrays("val").labels)
    return ExportedModel([run.model(models[i]) for i in used], [models[i].normalizer() for i in used], record.tta,
                         combiner, record.temperature, run.data_config.crop, used, len(models)).eval()


def metadata(run: RunDir, record: EnsembleRecord) -> dict[str, str]:
    in_chans, size = run.image_shape[0], run.data_config.stored_size  # the graph crops larger images itself
    return {"classes": json.dumps(run.classes), "image_size": str(size), "channels": str(in_chans),
            "model": record.name, "run": run.name, "input": "uint8 (batch, height, width, channels)",
            "output": "class probabilities (batch, classes)", "producer": "hpsearch"}


def export_model(run_dir: Path, model: str = "auto", fmt: str = "onnx", output: Path | None = None) -> Path:
    """Write ``model`` of the run as one ONNX or TorchScript file (to a temporary name, then renamed)."""
    if fmt not in FORMATS:
        raise HpsearchError(f"--format must be one of {', '.join(FORMATS)}, but got {fmt!r}.")
    run = RunDir(run_dir)
    record = shipped_model(run, model)
    output = Path(output or run.path / f"{record.name}{SUFFIXES[fmt]}")
    if output.is_dir():
        raise HpsearchError(f"--output names a folder ({str(output)!r}); give a file name ending in {SUFFIXES[fmt]}.")
    module = exported_model(run, record)
    in_chans, size = run.image_shape[0], run.data_config.stored_size
    example = torch.randint(0, 256, (2, size, size, in_chans), dtype=torch.uint8)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as tmp:
        partial = Path(tmp) / output.name
        (write_onnx if fmt == "onnx" else write_torchscript)(module, example, partial, metadata(run, record))
        partial.replace(output)
    return output


def write_onnx(module: nn.Module, example: torch.Tensor, path: Path, meta: dict[str, str]) -> None:
    import onnx

    with torch.no_grad():
        torch.onnx.export(module, (example,), str(path), input_names=["images"], output_names=["probabilities"],
                          dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1)}}, external_data=False,
                          opset_version=ONNX_OPSET, verbose=False)
    graph = onnx.load(str(path))
    del graph.metadata_props[:]
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


def write_torchscript(module: nn.Module, example: torch.Tensor, path: Path, meta: dict[str, str]) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(module, (example,), check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={"hpsearch.json": json.dumps(meta)})


def probabilities(module: nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(images))).numpy()
