"""A small TFLite importer: the op set of MediaPipe's vision models, run in JAX.

`read_graph` parses a `.tflite` flatbuffer (with the pure-Python `tflite` bindings, no
TensorFlow) into a list of `Op`s and float32 constants (sparse weights are made dense and
float16 weights dequantized once, here: the DENSIFY and DEQUANTIZE of constants). `TFLiteNet` is
an NNX module holding those constants as `nnx.Param`s and running the ops in order; it works under `jax.jit`, `jax.vmap` and `jax.vjp`. Checked op by op against the LiteRT
interpreter in `tests/test_models.py`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import layers

_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
_PADDING = {0: "SAME", 1: "VALID"}


@dataclasses.dataclass(frozen=True)
class Op:
  kind: str
  inputs: tuple[int, ...]
  outputs: tuple[int, ...]
  options: tuple[tuple[str, Any], ...]  # sorted (name, value) pairs: hashable, so NNX can be
  # jitted with the graph as static structure


@dataclasses.dataclass
class Graph:
  ops: list[Op]
  constants: dict[int, np.ndarray]
  shapes: dict[int, tuple[int, ...]]
  inputs: tuple[int, ...]
  outputs: tuple[int, ...]
  names: dict[int, str]


def _op_names() -> dict[int, str]:
  from tflite.BuiltinOperator import BuiltinOperator

  return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


def _options(op, kind: str) -> dict:
  import tflite

  table = op.BuiltinOptions()
  classes = {
      "CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
      "MAX_POOL_2D": tflite.Pool2DOptions, "AVERAGE_POOL_2D": tflite.Pool2DOptions,
      "ADD": tflite.AddOptions, "MUL": tflite.MulOptions,
      "CONCATENATION": tflite.ConcatenationOptions, "RESIZE_BILINEAR": tflite.ResizeBilinearOptions,
      "DEPTH_TO_SPACE": tflite.DepthToSpaceOptions,
  }
  if kind not in classes or table is None:
    return {}
  opts = classes[kind]()
  opts.Init(table.Bytes, table.Pos)
  out: dict[str, Any] = {}
  if hasattr(opts, "FusedActivationFunction"):
    out["activation"] = opts.FusedActivationFunction()
  if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"):
    out["padding"] = _PADDING[opts.Padding()]
    out["strides"] = (opts.StrideH(), opts.StrideW())
  if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
    out["dilation"] = (opts.DilationHFactor() or 1, opts.DilationWFactor() or 1)
  if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
    out["window"] = (opts.FilterHeight(), opts.FilterWidth())
  if kind == "CONCATENATION":
    out["axis"] = opts.Axis()
  if kind == "DEPTH_TO_SPACE":
    out["block"] = opts.BlockSize()
  if kind == "RESIZE_BILINEAR":
    out["align_corners"] = bool(opts.AlignCorners())
    out["half_pixel_centers"] = bool(opts.HalfPixelCenters())
  return out


def _index_vector(table, kind: int) -> np.ndarray:
  """A `SparseIndexVector` union member (1: int32, 2: uint16, 3: uint8) as an int array."""
  import tflite

  vector = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]()
  vector.Init(table.Bytes, table.Pos)
  return vector.ValuesAsNumpy().astype(np.int64)


def densify(values: np.ndarray, shape: tuple[int, ...], sparsity) -> np.ndarray:
  """A sparse constant (TFLite's `SparsityParameters`: each dimension dense or CSR, in traversal
  order, no blocks) as a dense array of `shape`; what the DENSIFY operator computes."""
  order = tuple(int(v) for v in sparsity.TraversalOrderAsNumpy())
  if sparsity.BlockMapLength() or order != tuple(range(len(shape))):
    raise NotImplementedError("block-sparse or reordered TFLite tensors are not supported")
  dims = [sparsity.DimMetadata(d) for d in range(sparsity.DimMetadataLength())]
  dense = np.zeros(shape, values.dtype)
  # Walk the dimensions: `positions` are flat indices into the dense array so far, `slots` the
  # matching positions in the sparse storage of the next dimension.
  positions, slots = np.zeros(1, np.int64), np.zeros(1, np.int64)
  for d, meta in enumerate(dims):
    if meta.Format() == 0:  # dense
      size = meta.DenseSize()
      positions = (positions[:, None] * shape[d] + np.arange(size)[None, :]).ravel()
      slots = (slots[:, None] * size + np.arange(size)[None, :]).ravel()
    else:  # CSR: segments[slot] .. segments[slot + 1] of the indices
      segments = _index_vector(meta.ArraySegments(), meta.ArraySegmentsType())
      indices = _index_vector(meta.ArrayIndices(), meta.ArrayIndicesType())
      counts = segments[slots + 1] - segments[slots]
      starts = np.repeat(segments[slots], counts)
      within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
      slots = starts + within
      positions = np.repeat(positions, counts) * shape[d] + indices[slots]
  dense.ravel()[positions] = values[slots]
  return dense


def read_graph(path: str | pathlib.Path) -> Graph:
  """Parses a `.tflite` file (first subgraph) into ops and float32 constants."""
  import tflite

  model = tflite.Model.GetRootAsModel(pathlib.Path(path).read_bytes(), 0)
  graph = model.Subgraphs(0)
  names = _op_names()
  constants, shapes, tensor_names = {}, {}, {}
  for t in range(graph.TensorsLength()):
    tensor = graph.Tensors(t)
    shapes[t] = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    tensor_names[t] = tensor.Name().decode()
    buffer = model.Buffers(tensor.Buffer())
    if buffer is not None and buffer.DataLength() > 0:
      raw = np.frombuffer(buffer.DataAsNumpy().tobytes(), _TYPES[tensor.Type()])
      sparsity = tensor.Sparsity()
      constants[t] = (raw.reshape(shapes[t]) if sparsity is None
                      else densify(raw, shapes[t], sparsity))
  ops = []
  for i in range(graph.OperatorsLength()):
    op = graph.Operators(i)
    code = model.OperatorCodes(op.OpcodeIndex())
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    kind = names.get(builtin, str(builtin))
    if kind == "CUSTOM":
      kind = "CUSTOM:" + code.CustomCode().decode()
    inputs = tuple(int(v) for v in op.InputsAsNumpy())
    outputs = tuple(int(v) for v in op.OutputsAsNumpy())
    if kind == "DENSIFY" and inputs[0] in constants:  # made dense when read, above
      constants[outputs[0]] = constants[inputs[0]]
      continue
    if kind == "DEQUANTIZE" and inputs[0] in constants:
      # float16 weights: dequantize once at load, not in every forward pass.
      constants[outputs[0]] = constants[inputs[0]].astype(np.float32)
      continue
    ops.append(Op(kind, inputs, outputs, tuple(sorted(_options(op, kind).items()))))
  for key, value in constants.items():
    if value.dtype == np.float16:
      constants[key] = value.astype(np.float32)
  return Graph(ops, constants, shapes, tuple(int(v) for v in graph.InputsAsNumpy()),
               tuple(int(v) for v in graph.OutputsAsNumpy()), tensor_names)


# --------------------------------------------------------------------------- ops


def _activate(x, code):
  if code in (None, 0):
    return x
  if code == 1:
    return jax.nn.relu(x)
  if code == 2:
    return jnp.clip(x, -1.0, 1.0)
  if code == 3:
    return jnp.clip(x, 0.0, 6.0)
  if code == 4:
    return jnp.tanh(x)
  raise NotImplementedError(f"fused activation {code}")


def _same_rank(a, b):
  """Adds leading unit axes so that two operands broadcast without rank promotion."""
  if a.ndim < b.ndim:
    a = a.reshape((1,) * (b.ndim - a.ndim) + a.shape)
  elif b.ndim < a.ndim:
    b = b.reshape((1,) * (a.ndim - b.ndim) + b.shape)
  return a, b


def _explicit_padding(size, window, stride, dilation=1):
  """TFLite SAME padding for one spatial axis (extra pixel at the end)."""
  effective = (window - 1) * dilation + 1
  out = -(-size // stride)
  total = max(0, (out - 1) * stride + effective - size)
  return total // 2, total - total // 2


def _pool(x, options, reducer):
  window, strides = options["window"], options["strides"]
  if options["padding"] == "SAME":
    pads = [_explicit_padding(x.shape[1 + i], window[i], strides[i]) for i in range(2)]
  else:
    pads = [(0, 0), (0, 0)]
  dims, steps = (1, *window, 1), (1, *strides, 1)
  padding = ((0, 0), *pads, (0, 0))
  if reducer == "max":
    out = layers.max_pool(x, window, strides, pads)
  else:  # TFLite averages over the window's valid (unpadded) elements
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, steps, padding)
    count = jax.lax.reduce_window(jnp.ones_like(x[:1, ..., :1]), 0.0, jax.lax.add, dims, steps,
                                  padding)
    out = total / count
  return _activate(out, options.get("activation"))


class TFLiteNet(nnx.Module):
  """A TFLite graph as an NNX module: constants are `nnx.Param`s, ops run in order.

  Args:
    graph: from `read_graph`.

  Calling it with `[N, H, W, C]` float32 (the graph's input size) returns the graph's outputs,
  a dict by tensor name.
  """

  def __init__(self, graph: Graph):
    self.ops = nnx.static(tuple(graph.ops))
    self.inputs = nnx.static(graph.inputs)
    self.outputs = nnx.static(graph.outputs)
    self.output_names = nnx.static(tuple(graph.names[t] for t in graph.outputs))
    self.shapes = nnx.static(tuple(sorted(graph.shapes.items())))
    floats = {f"t{k}": nnx.Param(jnp.asarray(v)) for k, v in graph.constants.items()
              if v.dtype == np.float32}
    self.weights = nnx.Dict(floats)
    self.int_constants = nnx.static(tuple(sorted(
        (k, tuple(np.asarray(v).ravel().tolist())) for k, v in graph.constants.items()
        if v.dtype != np.float32)))

  def _constant(self, index):
    key = f"t{index}"
    if key in self.weights:
      return self.weights[key][...]
    return np.asarray(dict(self.int_constants)[index])

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    values = {self.inputs[0]: x}
    shapes = dict(self.shapes)

    def get(index):
      return values[index] if index in values else self._constant(index)

    for op in self.ops:
      kind, opts = op.kind, dict(op.options)
      args = [get(i) if i >= 0 else None for i in op.inputs]
      if kind == "CONV_2D":
        out = layers.conv(args[0], args[1], opts["strides"], opts["padding"], opts["dilation"],
                          kernel_layout="OHWI")
        if args[2] is not None:
          out = out + args[2].reshape(1, 1, 1, -1)
        out = _activate(out, opts["activation"])
      elif kind == "DEPTHWISE_CONV_2D":
        out = layers.depthwise_conv(args[0], args[1][0], opts["strides"], opts["padding"], opts["dilation"])
        if args[2] is not None:
          out = out + args[2].reshape(1, 1, 1, -1)
        out = _activate(out, opts["activation"])
      elif kind in ("ADD", "MUL"):
        a, b = _same_rank(args[0], args[1])
        out = _activate(a + b if kind == "ADD" else a * b, opts.get("activation"))
      elif kind == "RELU":
        out = jax.nn.relu(args[0])
      elif kind == "RELU6":
        out = jnp.clip(args[0], 0.0, 6.0)
      elif kind == "LOGISTIC":
        out = jax.nn.sigmoid(args[0])
      elif kind == "HARD_SWISH":
        out = args[0] * jnp.clip(args[0] + 3.0, 0.0, 6.0) / 6.0
      elif kind == "PRELU":
        alpha = args[1].reshape((1,) * (args[0].ndim - args[1].ndim) + args[1].shape)
        out = jnp.maximum(args[0], 0.0) + alpha * jnp.minimum(args[0], 0.0)
      elif kind == "PAD":
        paddings = np.asarray(args[1]).reshape(-1, 2)
        out = jnp.pad(args[0], [tuple(int(v) for v in p) for p in paddings])
      elif kind == "MAX_POOL_2D":
        out = _pool(args[0], opts, "max")
      elif kind == "AVERAGE_POOL_2D":
        out = _pool(args[0], opts, "mean")
      elif kind == "RESHAPE":
        shape = shapes[op.outputs[0]]
        out = args[0].reshape((args[0].shape[0],) + tuple(shape[1:]))
      elif kind == "CONCATENATION":
        out = _activate(jnp.concatenate(args, axis=opts["axis"]), opts.get("activation"))
      elif kind == "RESIZE_BILINEAR":
        height, width = (int(v) for v in np.asarray(args[1]).ravel())
        rows = layers.resize_matrix(args[0].shape[1], height, opts["align_corners"],
                              opts["half_pixel_centers"])
        cols = layers.resize_matrix(args[0].shape[2], width, opts["align_corners"],
                              opts["half_pixel_centers"])
        out = jnp.einsum("ah,nhwc->nawc", rows, args[0])
        out = jnp.einsum("bw,nawc->nabc", cols, out)
      elif kind == "DEPTH_TO_SPACE":  # TensorFlow's DCR order: depth is (row, column, channel)
        n, h, w, c = args[0].shape
        b = opts["block"]
        out = args[0].reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5)
        out = out.reshape(n, h * b, w * b, c // (b * b))
      elif kind == "CUSTOM:Convolution2DTransposeBias":
        out = layers.transpose_conv_bias(args[0], args[1], args[2], shapes[op.outputs[0]])
      else:
        raise NotImplementedError(f"TFLite op {kind} is not supported by this importer")
      values[op.outputs[0]] = out
    return {name: values[t] for name, t in zip(self.output_names, self.outputs)}
