"""What `formdigits train` can be asked for: one place, light enough for the CLI to import (no TensorFlow)."""

__all__ = ["ARCHES", "DATA_CHOICES", "VGG_WEIGHTS_CHOICES"]

ARCHES = ("lenet5", "vgg16")
DATA_CHOICES = ("mixed", "mnist", "synthetic")
VGG_WEIGHTS_CHOICES = ("imagenet", "none")  # or the path of a weights file
