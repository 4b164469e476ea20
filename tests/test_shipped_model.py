"""The default LeNet-5 that ships in models/lenet5/2: it loads, has both signatures, and its card is true."""

import json

import numpy as np

from conftest import SHIPPED_MODEL
from corpus.mnist import LICENCE
from model_export import export


def _card() -> dict:
    return json.loads((SHIPPED_MODEL / export.MODEL_CARD_FILE).read_text())


def test_the_shipped_card_names_its_sources_counts_and_licences():
    card = _card()
    assert card["arch"] == "lenet5" and card["data"] == "mixed" and card["version"] == 2
    assert card["parameters"] == 61706 and card["seed"] == 0
    assert card["samples"] == sum(s["samples"] for s in card["sources"])
    names = [s["name"] for s in card["sources"]]
    assert "MNIST training split" in names and all(s["samples"] > 0 and s["licence"] for s in card["sources"])
    mnist = [s for s in card["sources"] if s["name"] == "MNIST training split"][0]
    assert mnist["licence"] == LICENCE and "CC BY-SA 3.0" in LICENCE
    assert card["heldout_primary"] == "mnist_validation" and card["heldout"]["mnist_validation"]["samples"] == 10000
    tight = [s for s in card["sources"] if s["name"].startswith("digits cut from forms without marks")]
    assert tight and tight[0]["samples"] == 30000 and card["heldout"]["own_form_crops"]["samples"] > 0


def test_the_shipped_model_reads_mnist_validation_at_its_cards_figure(real_mnist):
    import tensorflow as tf

    from corpus.mnist import mnist_splits

    splits = mnist_splits(str(real_mnist))
    x, y = splits["validation"]
    loaded = tf.saved_model.load(str(SHIPPED_MODEL))
    assert set(loaded.signatures) == {"serving_default", "predict_images"}
    classes = np.concatenate([loaded.signatures["serving_default"](images=tf.constant(x[i:i + 1000, ..., None]))
                              ["classes"].numpy() for i in range(0, len(x), 1000)])
    scores = loaded.signatures["predict_images"](images=tf.constant(x[:500].reshape(-1, 784).astype(np.float32) / 255))
    assert np.array_equal(scores["scores"].numpy().argmax(axis=1), classes[:500])
    accuracy = float((classes == y).mean())
    card = _card()["heldout"]["mnist_validation"]
    # The card was scored by Keras on the same graph; float order may flip a digit or two of 10,000.
    assert abs(accuracy - card["accuracy"]) <= 2e-4, (accuracy, card["accuracy"])
