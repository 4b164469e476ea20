"""The Keras VGG16 fine-tune variant: build, weights choices, short fine-tune, export."""

import json

import numpy as np
import pytest

from model_export.models import build_vgg16

pytestmark = pytest.mark.slow  # VGG16 builds and a fine-tune


def _trainable_blocks(model) -> set[str]:
    return {l.name.split("_")[0] for l in model.get_layer("vgg16").layers if l.trainable and l.weights}


def test_from_learned_weights_only_block5_and_head_train(tmp_path):
    import keras

    path = tmp_path / "vgg16_notop.weights.h5"
    keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg").save_weights(path)
    model = build_vgg16(weights=str(path))
    assert _trainable_blocks(model) == {"block5"}
    assert [l.name for l in model.layers if l.weights and l.name != "vgg16"] == ["head_dense", "probabilities"]
    assert model.get_layer("head_dropout").rate == 0.3
    assert model.get_layer("head_dense").units == 256


def test_from_a_random_start_every_block_trains():
    assert _trainable_blocks(build_vgg16(weights="none")) == {f"block{i}" for i in range(1, 6)}


def test_same_input_contract_as_lenet():
    model = build_vgg16(weights="none")
    assert model.input.dtype == "uint8" and tuple(model.input.shape) == (None, 28, 28, 1)
    out = model.predict(np.zeros((3, 28, 28, 1), np.uint8), verbose=0)
    assert out.shape == (3, 10)


def test_local_weights_file_is_loaded(tmp_path):
    import keras

    donor = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    path = tmp_path / "vgg16_notop.weights.h5"
    donor.save_weights(path)
    model = build_vgg16(weights=str(path))
    got = model.get_layer("vgg16").get_layer("block1_conv1").get_weights()[0]
    assert np.array_equal(got, donor.get_layer("block1_conv1").get_weights()[0])


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="pass 'imagenet', 'none' or a path"):
        build_vgg16(weights=str(tmp_path / "missing.h5"))


def test_short_fine_tune_and_export(tmp_path):
    from formdigits.cli import main

    rc = main(["train", "--arch", "vgg16", "--data", "synthetic", "--vgg-weights", "none", "--samples", "300",
               "--form-crops", "0",
               "--heldout-samples", "100", "--epochs", "1", "--batch-size", "50",
               "--export-dir", str(tmp_path)])
    assert rc == 0
    version_dir = tmp_path / "vgg16" / "1"
    card = json.loads((version_dir / "assets.extra" / "model_card.json").read_text())
    assert card["arch"] == "vgg16" and card["vgg_weights"] == "none"

    import tensorflow as tf

    loaded = tf.saved_model.load(str(version_dir))
    crops = np.zeros((2, 28, 28), np.uint8)
    crops[:, 6:22, 12:16] = 255
    default = loaded.signatures["serving_default"](images=tf.constant(crops[..., None]))
    scores = loaded.signatures["predict_images"](images=tf.constant(crops.reshape(2, 784) / np.float32(255)))
    assert default["probabilities"].shape == (2, 10)
    assert np.array_equal(default["classes"].numpy(), scores["scores"].numpy().argmax(axis=1))
