"""numpy <-> TensorProto without TensorFlow ops, checked against TensorFlow's own conversion."""

import numpy as np
import pytest
import tensorflow as tf

from serving.tensors import UnsupportedDtype, as_proto_field, as_tensor_content, make_ndarray


@pytest.mark.parametrize("array", [
    np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28, 1),
    np.linspace(0, 1, 784 * 3, dtype=np.float32).reshape(3, 784),
    np.array([3, 1, 4], np.int64),
    np.zeros((0, 10), np.float32),
])
def test_round_trips_both_encodings_and_matches_tensorflow(array):
    for encode in (as_tensor_content, as_proto_field):
        proto = encode(array)
        decoded = make_ndarray(proto)
        assert decoded.dtype == array.dtype and np.array_equal(decoded, array)
        assert np.array_equal(tf.make_ndarray(proto), array)  # TensorFlow reads what we write
    assert np.array_equal(make_ndarray(tf.make_tensor_proto(array)), array)  # and we read what it writes


def test_uint8_goes_as_raw_bytes():
    proto = as_tensor_content(np.full((4, 28, 28, 1), 255, np.uint8))
    assert len(proto.tensor_content) == 4 * 784 and not proto.int_val


def test_single_value_fills_the_tensor():
    proto = tf.make_tensor_proto(7.0, shape=[2, 3])
    assert np.array_equal(make_ndarray(proto), np.full((2, 3), 7.0, np.float32))


def test_unsupported_dtype():
    with pytest.raises(UnsupportedDtype, match="use uint8 or float32"):
        as_tensor_content(np.array(["a"]))


@pytest.mark.slow
def test_client_imports_without_starting_tensorflow():
    """Beam workers build requests with TF Serving's protos; they need not start TensorFlow (5 s, 400 MB)."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "import serving.client, pipeline.inference.infer\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
            "from serving.tensors import make_tensor_proto\n"
            "proto = make_tensor_proto(np.zeros((2, 28, 28, 1), np.uint8))\n"
            "import tensorflow as tf\n"  # the real package afterwards, same message classes
            "from tensorflow.core.framework import tensor_pb2\n"
            "assert type(proto) is tensor_pb2.TensorProto\n"
            "assert tf.make_ndarray(proto).shape == (2, 28, 28, 1)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
