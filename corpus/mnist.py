"""The real MNIST, read from a local file in the Keras loader's format.

`keras.datasets.mnist.load_data()` downloads `mnist.npz`, an archive holding
`x_train` [60000, 28, 28] uint8, `y_train` [60000], `x_test` [10000, 28, 28] and
`y_test` [10000]. Nothing is downloaded here: point `--mnist-path` at that file.
MNIST digits are already normalised (0 = paper, 255 = ink), so they are used
as they are.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

__all__ = ["MnistFileError", "load_mnist_npz"]

_KEYS = ("x_train", "y_train", "x_test", "y_test")


class MnistFileError(ValueError):
    """The MNIST file is missing or not in the Keras `mnist.npz` format."""


def load_mnist_npz(path: str | os.PathLike) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads `(x_train, y_train), (x_test, y_test)` like `keras.datasets.mnist.load_data`.

    Raises:
        MnistFileError: with a message saying what is wrong and what is expected.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MnistFileError(
            f"--mnist-path {path!r} does not exist; download mnist.npz (the file "
            "keras.datasets.mnist.load_data() fetches) on a machine with network access and pass its path")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _KEYS if k not in data.files]
            if missing:
                raise MnistFileError(
                    f"{path} is not a Keras mnist.npz: missing {', '.join(missing)} "
                    f"(found {', '.join(data.files) or 'nothing'})")
            arrays = {k: data[k] for k in _KEYS}
    except MnistFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise MnistFileError(f"{path} is not a readable .npz archive: {exc}") from exc

    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise MnistFileError(f"{path}: x_{split} must be [N, 28, 28], got {list(x.shape)}")
        if y.shape != (x.shape[0],):
            raise MnistFileError(f"{path}: y_{split} must be [{x.shape[0]}], got {list(y.shape)}")
        if x.shape[0] == 0:
            raise MnistFileError(f"{path}: x_{split} is empty")
        if y.size and (y.min() < 0 or y.max() > 9):
            raise MnistFileError(f"{path}: y_{split} labels must be 0..9")
        if x.dtype != np.uint8:
            if x.min() < 0 or x.max() > 255:
                raise MnistFileError(f"{path}: x_{split} must be uint8 0..255, got {x.dtype}")
            arrays[f"x_{split}"] = x.astype(np.uint8)
        arrays[f"y_{split}"] = y.astype(np.uint8)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
