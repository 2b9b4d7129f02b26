"""The embedded default: scikit-learn's handwritten digits (1,797 8x8 images, 10 classes), no download.

Run it with: hpsearch tune recipes/digits.py --out runs/digits --num-samples 8
"""

from hpsearch import Choice, Range

name = "digits"
seed = 0

data = dict(
    source="digits",
    image_size=16,      # 8x8 digits upsampled once into the cache, so timm backbones have room to downsample
    val_fraction=0.15,
    test_fraction=0.15,
)

train = dict(
    batch_size=64,
    warmup_epochs=1.0,
    flip=False,         # a mirrored digit is another digit (or none): no flips
    rotation=0.03,      # about +-10 degrees at aug_strength=1
    zoom=0.1,
    translate=0.05,
    patience=4,
)

budget = dict(
    num_samples=8,
    max_epochs=12,
    grace_period=2,
    reduction_factor=3,
    cpus_per_trial=1,
)


options = dict(
    backbones=Choice("tutorial_cnn", "resnet10t", "mobilenetv3_small_050"),  # --set options.backbones=a,b narrows it
    lr=Range(5e-4, 1e-2, log=True),
)


def space(trial, options):
    """Backbone first, then the optimizer and regularization knobs it shares with every other."""
    backbone = options["backbones"].suggest(trial, "backbone")
    options["lr"].suggest(trial, "lr")
    trial.suggest_float("weight_decay", 1e-5, 5e-2, log=True)
    trial.suggest_float("label_smoothing", 0.0, 0.1)
    trial.suggest_float("drop_rate", 0.0, 0.4)
    trial.suggest_float("aug_strength", 0.0, 1.0)
    if backbone != "tutorial_cnn":
        trial.suggest_float("drop_path_rate", 0.0, 0.1)
