"""jaxlib 0.10.2 miscompiles this block under jit on XLA:CPU (eager is right, jit off by 3.7).

Found while porting MediaPipe's face detector; the reason jax and jaxlib are pinned to 0.10.1.
`make test` compiles with cheaper options (`TEST_XLA_FLAGS`), where a miscompile may not
show: the jitted block is also run in a fresh process at XLA's default options, as users run it.
"""

import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np


def _block(x, depthwise, pointwise):
  r = jax.nn.relu(x)
  y = jax.lax.conv_general_dilated(
      r, depthwise, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=24)
  y = jax.lax.conv_general_dilated(
      y, pointwise, (1, 1), "SAME", dimension_numbers=("NHWC", "OHWI", "NHWC"))
  z = jax.nn.relu(jnp.pad(r, [[0, 0], [0, 0], [0, 0], [0, 4]]) + y)
  return jax.lax.reduce_window(z, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "SAME")


def _numpy_block(x, depthwise, pointwise):
  """Float64 NumPy reference of the same block."""
  x, depthwise, pointwise = (np.asarray(a, np.float64) for a in (x, depthwise, pointwise))
  r = np.maximum(x, 0)
  p = np.pad(r, [(0, 0), (1, 1), (1, 1), (0, 0)])
  _, h, w, _ = x.shape
  y = sum(p[:, i:i + h, j:j + w, :] * depthwise[i, j, 0] for i in range(3) for j in range(3))
  y = np.einsum("nhwc,oc->nhwo", y, pointwise[:, 0, 0, :])
  z = np.maximum(np.pad(r, [(0, 0), (0, 0), (0, 0), (0, 4)]) + y, 0)
  return z.reshape(1, h // 2, 2, w // 2, 2, -1).max(axis=(2, 4))


def _inputs() -> dict[str, np.ndarray]:
  """The block's input and weights, the same in both tests."""
  rng = np.random.default_rng(0)
  return {"x": rng.standard_normal((1, 64, 64, 24)).astype(np.float32),
          "depthwise": rng.standard_normal((3, 3, 1, 24)).astype(np.float32) * 0.3,
          "pointwise": rng.standard_normal((28, 1, 1, 24)).astype(np.float32) * 0.3}


def test_jit_matches_eager_and_numpy_on_residual_block_with_max_pool():
  x, depthwise, pointwise = _inputs().values()
  eager = _block(x, depthwise, pointwise)
  jitted = jax.jit(_block)(x, depthwise, pointwise)
  reference = _numpy_block(x, depthwise, pointwise)
  np.testing.assert_allclose(eager, reference, atol=1e-4)
  np.testing.assert_allclose(jitted, reference, atol=1e-4)


def test_jit_at_the_default_compile_options_matches_numpy(tmp_path):
  inputs = _inputs()
  np.savez(tmp_path / "inputs.npz", **inputs)
  script = ("import sys, jax, numpy as np\n"
            "from tests.test_jax_regression import _block\n"
            "a = np.load(sys.argv[1])\n"
            "np.save(sys.argv[2], jax.jit(_block)(a['x'], a['depthwise'], a['pointwise']))\n")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  root = pathlib.Path(__file__).resolve().parent.parent
  subprocess.run([sys.executable, "-c", script, str(tmp_path / "inputs.npz"),
                  str(tmp_path / "jitted.npy")], check=True, cwd=root, env=env)
  np.testing.assert_allclose(np.load(tmp_path / "jitted.npy"), _numpy_block(**inputs), atol=1e-4)
