"""The tutorial's own runs, for a side-by-side baseline: its 3-conv CNN at 180x180, Adam, 15 epochs.

Two fixed configurations, no search: the first tutorial model (no augmentation, no dropout) and its
improved version (RandomFlip/RandomRotation(0.1)/RandomZoom(0.1) and Dropout(0.2)). The data is
flowers.py's (this recipe extends it; its sections are merged key by key into that one's).
    hpsearch tune recipes/flowers_tutorial.py --set data.url=file:///path/flower_photos.tgz
"""

base = "flowers.py"
name = "flowers_tutorial"

data = dict(normalize="unit")  # the tutorial's Rescaling(1./255)

train = dict(
    backbone="tutorial_cnn",
    optimizer="adamw",
    lr=1e-3,            # Keras Adam's default
    weight_decay=0.0,   # plain Adam: no weight decay
    warmup_epochs=0.0,
    translate=0.0,      # the tutorial's RandomFlip("horizontal"), RandomRotation(0.1), RandomZoom(0.1): no shifts
    patience=100,       # the tutorial trains every epoch
)

budget = dict(num_samples=2, max_epochs=15, grace_period=15, max_concurrent=1, cpus_per_trial=2, gpus_per_trial=0)

options = dict()  # nothing to search


def space(trial, options):
    """Nothing to sample: trial 0 is the first model (it overfits), trial 1 adds the tutorial's fix."""
    improved = trial.number % 2 == 1
    return {"aug_strength": 1.0 if improved else 0.0, "drop_rate": 0.2 if improved else 0.0}
