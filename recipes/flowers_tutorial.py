"""The tutorial's own runs, for a side-by-side baseline: its 3-conv CNN at 180x180, Adam, 15 epochs.

Two fixed configurations, no search: the first tutorial model (no augmentation, no dropout) and its
improved version (RandomFlip/RandomRotation(0.1)/RandomZoom(0.1) and Dropout(0.2)).
    hpsearch tune recipes/flowers_tutorial.py --set data.url=file:///path/flower_photos.tgz
"""

name = "flowers_tutorial"
seed = 0

data = dict(
    source="folder",
    url="https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz",
    classes=("daisy", "dandelion", "roses", "sunflowers", "tulips"),
    min_images=3000,
    image_size=180,
    normalize="unit",   # the tutorial's Rescaling(1./255)
)

train = dict(
    backbone="tutorial_cnn",
    optimizer="adamw",
    lr=1e-3,            # Keras Adam's default
    weight_decay=0.0,   # plain Adam: no weight decay
    warmup_epochs=0.0,
    batch_size=32,
    flip=True,
    rotation=0.1,
    zoom=0.1,
    patience=100,       # the tutorial trains every epoch
)

budget = dict(num_samples=2, max_epochs=15, grace_period=15, max_concurrent=1, cpus_per_trial=2)


def space(trial):
    """Nothing to sample: trial 0 is the first model (it overfits), trial 1 adds the tutorial's fix."""
    improved = trial.number % 2 == 1
    return {"aug_strength": 1.0 if improved else 0.0, "drop_rate": 0.2 if improved else 0.0}
