"""TF Serving's generated protos and stubs, without starting TensorFlow.

tensorflow-serving-api's `*_pb2` modules import `tensorflow.core.framework.*_pb2`
(TensorProto and friends). Those are plain generated protobuf modules, but
importing them runs `tensorflow/__init__.py` first: ~5 s and ~400 MB in every
process that only builds requests (the job's driver and each Beam worker).

`load()` imports the generated modules under a bare `tensorflow` package
shell (the real package's directory, its `__init__` not run), then takes the
shell away again. The `_pb2` modules stay registered under their real names,
so a later `import tensorflow` (the local server, training) runs the real
package and reuses the very same message classes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

_lock = threading.Lock()
_MODULES = (
    "tensorflow.core.framework.tensor_pb2",
    "tensorflow.core.framework.tensor_shape_pb2",
    "tensorflow.core.framework.types_pb2",
    "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.prediction_service_pb2_grpc",
    "tensorflow_serving.apis.model_service_pb2_grpc",
    "tensorflow_serving.apis.get_model_status_pb2",
    "tensorflow_serving.apis.get_model_metadata_pb2",
)


def load() -> None:
    """Imports the protos and stubs this package uses (idempotent, thread-safe)."""
    if all(name in sys.modules for name in _MODULES):
        return
    with _lock:
        if "tensorflow" in sys.modules:  # TensorFlow is already running: import normally
            for name in _MODULES:
                importlib.import_module(name)
            return
        spec = importlib.util.find_spec("tensorflow")
        shell = types.ModuleType("tensorflow")
        shell.__path__ = list(spec.submodule_search_locations)
        shell.__spec__ = spec
        sys.modules["tensorflow"] = shell
        try:
            for name in _MODULES:
                importlib.import_module(name)
        finally:
            # Drop the shell and the package modules created under it; keep the _pb2 leaves.
            for name in [n for n in sys.modules if n == "tensorflow" or n.startswith("tensorflow.")]:
                if not name.endswith("_pb2"):
                    del sys.modules[name]


def framework_protos() -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
    """(tensor_pb2, tensor_shape_pb2, types_pb2) from tensorflow.core.framework, TensorFlow not started.

    Taken from sys.modules: `from tensorflow.core.framework import ...` would run
    the real `tensorflow/__init__.py` once the shell is gone.
    """
    load()
    return tuple(sys.modules[f"tensorflow.core.framework.{n}"] for n in ("tensor_pb2", "tensor_shape_pb2", "types_pb2"))
