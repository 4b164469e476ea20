"""What `formdigits train` can be asked for: one place, light enough for the CLI to import (no TensorFlow)."""

__all__ = ["ARCHES", "DATA_CHOICES", "VGG_WEIGHTS_CHOICES", "DEFAULT_MIX", "MIX_PARTS", "DEFAULT_EPOCHS", "mix_default"]

ARCHES = ("lenet5", "vgg16")
DATA_CHOICES = ("mixed", "mnist", "synthetic")
VGG_WEIGHTS_CHOICES = ("imagenet", "none")  # or the path of a weights file

# Per architecture and data, how many samples of each generated source (MNIST's training split comes whole).
MIX_PARTS = ("synthetic", "form_crops", "mnist_form_crops", "own_form_crops")
DEFAULT_MIX = {
    ("lenet5", "mixed"): (40000, 24000, 60000, 30000),
    ("lenet5", "synthetic"): (90000, 18000, 0, 0),
    ("vgg16", "mixed"): (8000, 3000, 3000, 0),
    ("vgg16", "synthetic"): (20000, 4000, 0, 0),
}
DEFAULT_EPOCHS = {"lenet5": 12, "vgg16": 3}


def mix_default(part: str) -> str:
    """The defaults of one source for --help: "40000 lenet5 mixed, 90000 lenet5 synthetic, ...", zeros left out."""
    k = MIX_PARTS.index(part)
    return ", ".join(f"{mix[k]} {arch} {data}" for (arch, data), mix in DEFAULT_MIX.items() if mix[k])
