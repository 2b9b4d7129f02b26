"""The flowers search from scratch on a 2-core CPU (about 25 minutes; see the README): flowers.py, smaller."""

from hpsearch import Choice, Range

base = "flowers.py"  # its data, train, budget, options and space; the dicts below are merged into its own
name = "flowers_cpu"

data = dict(image_size=96)
train = dict(amp=True)  # bfloat16 autocast: 1.3-1.6x ResNet-10t's speed on a CPU with AVX512-BF16 or AMX
budget = dict(num_samples=10, max_epochs=20, cpus_per_trial=1, gpus_per_trial=0, time_budget_s=1500)
options = dict(backbones=Choice("tutorial_cnn", "resnet10t"), lr=Range(3e-4, 5e-3, log=True),
               drop_path_rate=Range(0.0, 0.1), aug_strength=Range(0.5, 1.5), mixup_alpha=Choice(0.0),
               cutmix_alpha=Choice(0.0))
