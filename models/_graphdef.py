"""A TensorFlow 1 frozen `GraphDef` read without TensorFlow: protobuf's wire format, by hand.

A frozen graph is one protobuf message, `GraphDef { repeated NodeDef node = 1; }`, with

    NodeDef   { string name = 1; string op = 2; repeated string input = 3;
                map<string, AttrValue> attr = 5; }
    AttrValue { ListValue list = 1; bytes s = 2; int64 i = 3; float f = 4; bool b = 5;
                DataType type = 6; TensorShapeProto shape = 7; TensorProto tensor = 8; }
    TensorProto { DataType dtype = 1; TensorShapeProto tensor_shape = 2; bytes tensor_content = 4;
                  repeated float float_val = 5; repeated int32 int_val = 7; repeated int64 int64_val = 10; }

(field numbers from TensorFlow's `graph.proto`, `node_def.proto`, `attr_value.proto`,
`tensor.proto`). `read_graphdef` decodes only these fields, which is all a convolutional network's
weights and wiring need; `tests/test_models.py` checks the network built from it against OpenCV's
DNN module, which reads the same file with its own protobuf parser.
"""

from __future__ import annotations

import dataclasses
import pathlib
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

# TensorFlow's DataType enum, the values that occur in detection graphs.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 6: np.int8, 7: object,
           9: np.int64, 10: np.bool_, 19: np.float16}


@dataclasses.dataclass(frozen=True)
class Node:
  """One graph node: its op, its inputs (``"name"``, ``"name:1"`` or ``"^control"``) and attrs."""

  name: str
  op: str
  inputs: tuple[str, ...]
  attrs: dict[str, Any]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
  result = shift = 0
  while True:
    byte = buf[pos]
    pos += 1
    result |= (byte & 0x7F) << shift
    if byte < 0x80:
      return result, pos
    shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
  """(field number, wire type, value): varints as int, fixed as bytes, length-delimited as bytes."""
  pos, end = 0, len(buf)
  while pos < end:
    key, pos = _varint(buf, pos)
    number, wire = key >> 3, key & 7
    if wire == 0:
      value, pos = _varint(buf, pos)
    elif wire == 1:
      value, pos = buf[pos:pos + 8], pos + 8
    elif wire == 2:
      size, pos = _varint(buf, pos)
      value, pos = buf[pos:pos + size], pos + size
    elif wire == 5:
      value, pos = buf[pos:pos + 4], pos + 4
    else:
      raise ValueError(f"not a GraphDef: protobuf wire type {wire} at byte {pos}")
    yield number, wire, value
  if pos != end:
    raise ValueError("not a GraphDef: a field runs past the end of its message")


def _signed(value: int) -> int:
  return value - (1 << 64) if value >= 1 << 63 else value


def _packed_varints(wire: int, value) -> list[int]:
  if wire == 0:
    return [_signed(value)]
  out, pos = [], 0
  while pos < len(value):
    v, pos = _varint(value, pos)
    out.append(_signed(v))
  return out


def _packed_floats(wire: int, value) -> list[float]:
  return list(struct.unpack(f"<{len(value) // 4}f", value))


def _shape(buf: bytes) -> tuple[int, ...] | None:
  dims, unknown = [], False
  for number, _, value in _fields(buf):
    if number == 2:
      size = next((_signed(v) for n, _, v in _fields(value) if n == 1), 0)
      dims.append(size)
    elif number == 3:
      unknown = bool(value)
  return None if unknown else tuple(dims)


def _tensor(buf: bytes) -> np.ndarray:
  dtype, shape, content = 1, (), None
  floats: list[float] = []
  ints: list[int] = []
  for number, wire, value in _fields(buf):
    if number == 1:
      dtype = value
    elif number == 2:
      shape = _shape(value) or ()
    elif number == 4:
      content = value
    elif number == 5:
      floats += _packed_floats(wire, value) if wire == 2 else [struct.unpack("<f", value)[0]]
    elif number in (7, 10, 11):
      ints += _packed_varints(wire, value)
  if dtype not in _DTYPES or _DTYPES[dtype] is object:
    return np.zeros((0,), np.float32)  # strings and the like: nothing a network computes with
  np_type = np.dtype(_DTYPES[dtype])
  count = int(np.prod(shape)) if shape else 1
  if content is not None:
    return np.frombuffer(content, np_type.newbyteorder("<")).astype(np_type).reshape(shape)
  values = floats if np_type.kind == "f" else ints
  if not values:
    return np.zeros(shape, np_type)
  array = np.asarray(values, np_type)
  if array.size == 1 and count > 1:  # TensorFlow stores a splat as its one value
    array = np.full(shape, array[0], np_type)
  return array.reshape(shape)


def _attr(buf: bytes) -> Any:
  for number, wire, value in _fields(buf):
    if number == 1:
      items: dict[str, list] = {}
      for n, w, v in _fields(value):
        key = {2: "s", 3: "i", 4: "f", 5: "b", 6: "type", 7: "shape"}.get(n)
        if key is None:
          continue
        if key in ("i", "type", "b"):
          items.setdefault(key, []).extend(_packed_varints(w, v))
        elif key == "f":
          items.setdefault(key, []).extend(_packed_floats(w, v) if w == 2
                                           else [struct.unpack("<f", v)[0]])
        elif key == "shape":
          items.setdefault(key, []).append(_shape(v))
        else:
          items.setdefault(key, []).append(v)
      return next(iter(items.values()), [])
    if number == 2:
      return bytes(value)
    if number == 3:
      return _signed(value)
    if number == 4:
      return struct.unpack("<f", value)[0]
    if number in (5, 6):
      return int(value)
    if number == 7:
      return _shape(value)
    if number == 8:
      return _tensor(value)
  return None


def _node(buf: bytes) -> Node:
  name = op = ""
  inputs: list[str] = []
  attrs: dict[str, Any] = {}
  for number, _, value in _fields(buf):
    if number == 1:
      name = value.decode()
    elif number == 2:
      op = value.decode()
    elif number == 3:
      inputs.append(value.decode())
    elif number == 5:
      key, attr = "", None
      for n, _, v in _fields(value):
        if n == 1:
          key = v.decode()
        elif n == 2:
          attr = _attr(v)
      attrs[key] = attr
  return Node(name, op, tuple(inputs), attrs)


def read_graphdef(path: str | pathlib.Path) -> dict[str, Node]:
  """The nodes of a frozen `GraphDef` file, by name, in file order.

  Raises:
    ValueError: the file is not a protobuf GraphDef (it names the file).
  """
  data = pathlib.Path(path).read_bytes()
  try:
    nodes = [_node(value) for number, _, value in _fields(data) if number == 1]
  except (IndexError, UnicodeDecodeError, struct.error, ValueError) as error:
    raise ValueError(f"{path}: not a TensorFlow GraphDef ({error})") from error
  if not nodes or not all(node.op for node in nodes):
    raise ValueError(f"{path}: not a TensorFlow GraphDef (no nodes with an op)")
  return {node.name: node for node in nodes}
