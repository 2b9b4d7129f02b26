"""TensorFlow's flowers photos (5 classes, 3,670 JPEGs): the tutorial's dataset, trained from scratch.

The defaults are a GPU-sized search at the tutorial's 180x180. On a CPU, shrink it (see the README):
    hpsearch tune recipes/flowers.py --set data.image_size=64 --num-samples 8 --max-epochs 20 \\
        --set options.backbones=tutorial_cnn,resnet10t --set options.mixup_alpha=0 \\
        --set options.cutmix_alpha=0 --set options.aug_strength=0.5,1.5 --cpus-per-trial 1 --gpus-per-trial 0
Offline, point it at a copy of the archive: --set data.url=file:///path/flower_photos.tgz,
or at an extracted folder: --set data.root=/path/flower_photos.
flowers_transfer.py and flowers_tutorial.py extend this recipe (base = "flowers.py"): its data block is theirs.
"""

from hpsearch import Choice, Range

name = "flowers"
seed = 0

data = dict(
    source="folder",
    url="https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz",
    classes=("daisy", "dandelion", "roses", "sunflowers", "tulips"),
    min_images=3000,
    image_size=180,
    val_fraction=0.15,
    test_fraction=0.15,
)

train = dict(
    batch_size=32,
    warmup_epochs=1.0,
    flip=True,          # the tutorial's RandomFlip("horizontal"), RandomRotation(0.1), RandomZoom(0.1)
    rotation=0.1,
    zoom=0.1,
    translate=0.05,
    patience=8,
)

# grace_period is left at its default, a third of max_epochs: an earlier first rung cuts the high learning rates
budget = dict(
    num_samples=40,
    max_epochs=40,
    reduction_factor=3,
    cpus_per_trial=4,
    gpus_per_trial=0.5,
)

# The five families the tutorial names (ResNet, VGG, Inception, DenseNet, MobileNet), EfficientNet,
# and the tutorial's own CNN. Backbones need a minimum input size (inception_v3: 75 px, the others 32 px);
# `hpsearch tune` checks it before any trial starts. Each name has one range for every backbone: Optuna's
# multivariate TPE models one range per name (the first trial's): with a learning rate per backbone it
# never proposed resnet10t a rate above tutorial_cnn's top (3e-3). Narrow them with --set.
FAMILIES = {  # backbone: whether it takes timm's drop_path_rate (stochastic depth)
    "tutorial_cnn": False,
    "resnet10t": True,
    "resnet18": True,
    "vgg11_bn": False,
    "inception_v3": False,
    "densenet121": False,
    "mobilenetv3_large_100": True,
    "efficientnet_b0": True,
}

options = dict(
    backbones=Choice(*FAMILIES),
    lr=Range(1e-4, 1e-2, log=True),  # spans the ranges once given per family: vgg11_bn 1e-4..1e-3 to mobile 1e-3..1e-2
    drop_rate=Range(0.0, 0.5),
    drop_path_rate=Range(0.0, 0.2),
    aug_strength=Range(0.0, 2.0),  # 1.0 is the tutorial's augmentation
    mixup_alpha=Choice(0.0, 0.2),  # 0: off
    cutmix_alpha=Choice(0.0, 1.0),
)


def space(trial, options):
    backbone = options["backbones"].suggest(trial, "backbone")
    options["lr"].suggest(trial, "lr")
    trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True)
    options["drop_rate"].suggest(trial, "drop_rate")
    if FAMILIES.get(backbone, True):
        options["drop_path_rate"].suggest(trial, "drop_path_rate")
    trial.suggest_float("label_smoothing", 0.0, 0.2)
    options["aug_strength"].suggest(trial, "aug_strength")
    options["mixup_alpha"].suggest(trial, "mixup_alpha")
    options["cutmix_alpha"].suggest(trial, "cutmix_alpha")
