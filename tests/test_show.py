from __future__ import annotations

from PIL import Image

from hpsearch.cli import main
from tests.conftest import RECIPES


def test_show_writes_the_sample_grid_and_augmentations(tmp_path, capsys):
    out = tmp_path / "show"
    assert main(["show", str(RECIPES / "digits.py"), "--out", str(out), "--strength", "2"]) == 0
    for name in ("samples.png", "augmented.png"):
        with Image.open(out / name) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 300
    assert "10 classes" in capsys.readouterr().out
