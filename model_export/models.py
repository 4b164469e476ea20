"""Keras model builders: LeNet-5 and a fine-tunable VGG16.

Both take the serving contract's input directly, uint8 [N, 28, 28, 1] with
0 = paper and 255 = ink, and scale to float inside the graph, so the exported
SavedModel needs no client-side preprocessing.
"""

from __future__ import annotations

import os

import keras
from keras import layers

from model_export.choices import ARCHES, VGG_WEIGHTS_CHOICES

__all__ = ["ARCHES", "build_model", "build_lenet5", "build_vgg16", "VGG_WEIGHTS_CHOICES"]

VGG_INPUT = 32  # keras.applications.VGG16 needs at least 32x32


def build_lenet5(dropout: float = 0.25) -> keras.Model:
    """LeNet-5 (LeCun et al. 1998) in its modern form: ReLU, max-pool, softmax.

    C1 6@5x5 (same) -> pool -> C3 16@5x5 -> pool -> C5 120@5x5 -> F6 84 -> dropout -> 10.
    61,706 trainable parameters.
    """
    inputs = keras.Input((28, 28, 1), dtype="uint8", name="images")
    x = layers.Rescaling(1.0 / 255.0, name="to_unit")(inputs)
    x = layers.Conv2D(6, 5, padding="same", activation="relu", name="c1")(x)
    x = layers.MaxPooling2D(2, name="s2")(x)
    x = layers.Conv2D(16, 5, activation="relu", name="c3")(x)
    x = layers.MaxPooling2D(2, name="s4")(x)
    x = layers.Conv2D(120, 5, activation="relu", name="c5")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(84, activation="relu", name="f6")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="lenet5")


def _resolve_vgg_weights(weights: str | None) -> str | None:
    """Maps the CLI's weights choice to what keras.applications.VGG16 takes."""
    if weights is None or weights.lower() == "none":
        return None
    if weights == "imagenet":
        return "imagenet"  # Keras downloads these; needs the network
    if not os.path.isfile(weights):
        raise FileNotFoundError(
            f"VGG16 weights file {weights!r} does not exist; pass 'imagenet', 'none' or a path to "
            "a vgg16 no-top weights file (.weights.h5 or .h5)")
    return weights


def build_vgg16(weights: str | None = "none", head_units: int = 256, dropout: float = 0.3) -> keras.Model:
    """VGG16 fine-tune for digits.

    Crops are resized to 32x32 and replicated to 3 channels inside the graph, then
    fed to VGG16's own preprocessing; the head is Dense 256 -> Dropout 0.3 -> Dense 10.
    From learned weights (ImageNet or a file), blocks 1-4 keep them (frozen) and block5
    and the head are fine-tuned. From a random start there is nothing to keep: every
    block learns (frozen random filters read MNIST at 88%).

    Args:
        weights: "imagenet" (Keras download), "none"/None (random init), or a local
            weights file for `keras.applications.VGG16(include_top=False)`.
    """
    start = _resolve_vgg_weights(weights)
    base = keras.applications.VGG16(include_top=False, weights=start, input_shape=(VGG_INPUT, VGG_INPUT, 3),
                                    pooling="avg")
    for layer in base.layers:
        layer.trainable = start is None or layer.name.startswith("block5")

    inputs = keras.Input((28, 28, 1), dtype="uint8", name="images")
    x = layers.Lambda(lambda t: keras.ops.cast(t, "float32"), name="to_float")(inputs)
    x = layers.Resizing(VGG_INPUT, VGG_INPUT, interpolation="bilinear", name="resize")(x)
    x = layers.Concatenate(name="to_rgb")([x, x, x])
    # vgg16.preprocess_input: RGB->BGR and ImageNet mean subtraction, 0..255 scale.
    x = layers.Lambda(keras.applications.vgg16.preprocess_input, name="vgg_preprocess")(x)
    x = base(x)
    x = layers.Dense(head_units, activation="relu", name="head_dense")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="vgg16")


def build_model(arch: str, vgg_weights: str | None = "none") -> keras.Model:
    if arch == "lenet5":
        return build_lenet5()
    if arch == "vgg16":
        return build_vgg16(weights=vgg_weights)
    raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHES)}")
