"""numpy <-> TensorProto, without calling TensorFlow.

Requests are built with `tensor_content` (raw little-endian bytes: one memcpy,
no per-element encoding). Responses are read from `tensor_content` or from the
typed `*_val` fields, which TF Serving uses unless started with
`--enable_serialization_as_tensor_content`.
"""

from __future__ import annotations

import numpy as np

from serving._protos import framework_protos

tensor_pb2, tensor_shape_pb2, types_pb2 = framework_protos()

__all__ = ["make_tensor_proto", "make_ndarray", "as_proto_field", "as_tensor_content", "UnsupportedDtype"]


class UnsupportedDtype(TypeError):
    """The array or tensor has a dtype this project does not exchange."""


_TO_PROTO = {
    np.dtype(np.uint8): types_pb2.DT_UINT8,
    np.dtype(np.int8): types_pb2.DT_INT8,
    np.dtype(np.int16): types_pb2.DT_INT16,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int64): types_pb2.DT_INT64,
    np.dtype(np.float16): types_pb2.DT_HALF,
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.float64): types_pb2.DT_DOUBLE,
    np.dtype(np.bool_): types_pb2.DT_BOOL,
}
_FROM_PROTO = {v: k for k, v in _TO_PROTO.items()}
# Which repeated field carries each dtype when values are sent as proto fields.
_VAL_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_HALF: "half_val",
}


def _shape(array: np.ndarray) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape])


def _dtype_enum(array: np.ndarray) -> int:
    try:
        return _TO_PROTO[array.dtype]
    except KeyError:
        raise UnsupportedDtype(f"cannot send a {array.dtype} array; use uint8 or float32") from None


def as_tensor_content(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Encodes `array` as raw bytes in `tensor_content` (the fast path)."""
    array = np.asarray(array)
    dtype = _dtype_enum(array)
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=_shape(array), tensor_content=data.tobytes())


make_tensor_proto = as_tensor_content


def as_proto_field(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Encodes `array` in its typed repeated field, as TF Serving answers by default."""
    array = np.asarray(array)
    dtype = _dtype_enum(array)
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=_shape(array))
    flat = array.ravel()
    if dtype == types_pb2.DT_HALF:
        proto.half_val.extend(flat.view(np.uint16).astype(np.int32).tolist())
    else:
        getattr(proto, _VAL_FIELD[dtype]).extend(flat.tolist())
    return proto


def make_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """Decodes a TensorProto from either encoding into a numpy array."""
    try:
        dtype = _FROM_PROTO[proto.dtype]
    except KeyError:
        raise UnsupportedDtype(f"cannot read tensors of type {types_pb2.DataType.Name(proto.dtype)}") from None
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if proto.tensor_content:
        array = np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<"))
        if array.size != count:
            raise ValueError(f"tensor_content holds {array.size} values, shape {list(shape)} needs {count}")
        return array.astype(dtype, copy=False).reshape(shape)
    field = _VAL_FIELD[proto.dtype]
    values = getattr(proto, field)
    if proto.dtype == types_pb2.DT_HALF:
        flat = np.asarray(values, np.uint16).view(np.float16)
    else:
        flat = np.asarray(values, dtype=dtype)
    if flat.size == count:
        return flat.reshape(shape)
    if flat.size == 1:  # TensorFlow's convention: one value fills the tensor
        return np.full(shape, flat[0], dtype=dtype)
    if flat.size == 0 and count == 0:
        return flat.reshape(shape)
    raise ValueError(f"{field} holds {flat.size} values, shape {list(shape)} needs {count}")
