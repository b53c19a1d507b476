"""PySlowFast's Caffe2 SlowFast checkpoints (``SLOWFAST_8x8_R50.pkl``) for pytorchvideo's network.

The file HERO's extractor loaded is a Python pickle ``{"blobs": {name: numpy array}, ...}``
written by Caffe2. PySlowFast (``load_checkpoint(..., convert_from_caffe2=True)``) renames each
blob to its own module names; pytorchvideo's ``slowfast_r50`` is the same network under other
names. Here both renamings are written out as two tables, one step each::

    Caffe2 blob                            PySlowFast
        pytorchvideo
    conv1_w                                s1.pathway0_stem.conv.weight
        blocks.0.multipathway_blocks.0.conv.weight
    t_res_conv1_bn_s                       s1.pathway1_stem.bn.weight
        blocks.0.multipathway_blocks.1.norm.weight
    t_pool1_subsample_w                    s1_fuse.conv_f2s.weight
        blocks.0.multipathway_fusion.conv_fast_to_slow.weight
    res3_0_branch2b_bn_riv                 s3.pathway0_res0.branch2.b_bn.running_var
        blocks.2.multipathway_blocks.0.res_blocks.0.branch2.norm_b.running_var
    t_res4_5_branch2c_bn_subsample_bn_rm   s4_fuse.bn.running_mean
        blocks.3.multipathway_fusion.norm.running_mean
    pred_w                                 head.projection.weight
        blocks.6.proj.weight

Caffe2 names: a ``t_`` prefix is the fast pathway (PySlowFast's ``pathway1``), none the slow
one; ``resS_B_branch2{a,b,c}`` is stage S, block B's bottleneck conv, ``branch1`` its shortcut;
``_w`` / ``_b`` a weight / bias; a BN's ``_bn_s``, ``_bn_b``, ``_bn_rm``, ``_bn_riv`` its scale,
shift, running mean and running variance. The fast-to-slow fusions are named after the layer
they follow: ``t_pool1_subsample`` (after the stem) and ``t_resS_B_branch2c_bn_subsample``
(after stage S's last block). Blobs of the optimizer (``*_momentum``, ``lr``, ``model_iter``)
are skipped, as PySlowFast skips them. PySlowFast's ``c2_normal_to_sub_bn`` renames BN
statistics only for networks with sub-batch-norm, which this one has not, so it changes
nothing here. A blob with fewer dimensions than its tensor gets trailing ones (PySlowFast's
rule, for linear-to-conv reshapes); any other shape difference is an error.

Unlike PySlowFast (which logs a shape mismatch and keeps the random initialisation, then loads
non-strictly), every tensor of the network must be filled, once, with the right shape, and
every blob that is not optimizer state must find its place; otherwise :class:`WeightsError`
lists what is wrong.

The pickle is read by :class:`_BlobUnpickler`, which resolves only the few globals a pickle
of numpy arrays needs (array reconstruction, dtypes, scalars, ``OrderedDict``, and the
``_codecs.encode`` that Python 3 uses for bytes in protocol 2); any other global (a function
that would run code) is refused before it is called.
"""

from __future__ import annotations

import codecs
import collections
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from extract.weights import WeightsError

_BN = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
_BN_ALT = "|".join(_BN)
_BOOKKEEPING = ("momentum", "lr", "model_iter")  # optimizer state in the blobs, not weights


# --- reading the pickle, safely ------------------------------------------------------------------


def _numpy_multiarray() -> Any:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray


def _plain_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype(*args)`` for numbers only: an object dtype could hold any Python object."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"refusing a numpy dtype that holds objects ({dtype})")
    return dtype


def _allowed_globals() -> dict[tuple[str, str], Any]:
    multiarray = _numpy_multiarray()
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): codecs.encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


class _BlobUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays of numbers; refuses any other global."""

    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global '{module}.{name}' is not allowed in a Caffe2 blob file"
            ) from None


def read_blobs(path: str | Path) -> dict[str, np.ndarray]:
    """The ``{"blobs": {...}}`` of a Caffe2 checkpoint pickle, read without running code.

    Raises :class:`WeightsError` naming the file when it is unreadable, names a global other
    than numpy array reconstruction (refused before anything is called), or is not a mapping
    of blob names to numeric arrays.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            # latin1: Caffe2 wrote these from Python 2, whose str held the arrays' bytes.
            obj = _BlobUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        if "not allowed" in str(e) or "refusing" in str(e):
            raise WeightsError(
                f"{path} refused: {e}; loading it could run code. A Caffe2 weight file holds "
                "numpy arrays only."
            ) from e
        raise WeightsError(f"{path} is not a readable Caffe2 checkpoint pickle ({e})") from e
    except Exception as e:  # EOFError, a truncated file, a bad opcode, numpy's own errors...
        raise WeightsError(
            f"{path} is not a readable Caffe2 checkpoint pickle ({type(e).__name__}: {e})"
        ) from e
    blobs = obj.get("blobs") if isinstance(obj, Mapping) else None
    if not isinstance(blobs, Mapping):
        keys = list(obj)[:5] if isinstance(obj, Mapping) else []
        raise WeightsError(
            f"{path} holds a {type(obj).__name__} (keys {keys}), not a Caffe2 checkpoint with "
            '"blobs"'
        )
    out: dict[str, np.ndarray] = {}
    for name, value in blobs.items():
        if not isinstance(name, str):
            raise WeightsError(f"{path}: blob name {name!r} is not a string")
        if isinstance(value, np.generic):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
            raise WeightsError(f"{path}: blob {name!r} is not a numeric array ({type(value)})")
        out[name] = value
    return out


# --- renaming: Caffe2 -> PySlowFast -> pytorchvideo -------------------------------------------


def _pathway(prefix: str | None) -> int:
    return 1 if prefix else 0  # "t_": the fast pathway


_C2_TO_PYSLOWFAST: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"(t_)?conv1_w"),
        lambda m: f"s1.pathway{_pathway(m[1])}_stem.conv.weight",
    ),
    (
        re.compile(rf"(t_)?res_conv1_bn_({_BN_ALT})"),
        lambda m: f"s1.pathway{_pathway(m[1])}_stem.bn.{_BN[m[2]]}",
    ),
    (re.compile(r"t_pool1_subsample_w"), lambda m: "s1_fuse.conv_f2s.weight"),
    (re.compile(rf"t_pool1_subsample_bn_({_BN_ALT})"), lambda m: f"s1_fuse.bn.{_BN[m[1]]}"),
    (
        re.compile(r"t_res(\d+)_\d+_branch2c_bn_subsample_w"),
        lambda m: f"s{m[1]}_fuse.conv_f2s.weight",
    ),
    (
        re.compile(rf"t_res(\d+)_\d+_branch2c_bn_subsample_bn_({_BN_ALT})"),
        lambda m: f"s{m[1]}_fuse.bn.{_BN[m[2]]}",
    ),
    (
        re.compile(r"(t_)?res(\d+)_(\d+)_branch1_w"),
        lambda m: f"s{m[2]}.pathway{_pathway(m[1])}_res{m[3]}.branch1.weight",
    ),
    (
        re.compile(rf"(t_)?res(\d+)_(\d+)_branch1_bn_({_BN_ALT})"),
        lambda m: f"s{m[2]}.pathway{_pathway(m[1])}_res{m[3]}.branch1_bn.{_BN[m[4]]}",
    ),
    (
        re.compile(r"(t_)?res(\d+)_(\d+)_branch2([abc])_w"),
        lambda m: f"s{m[2]}.pathway{_pathway(m[1])}_res{m[3]}.branch2.{m[4]}.weight",
    ),
    (
        re.compile(rf"(t_)?res(\d+)_(\d+)_branch2([abc])_bn_({_BN_ALT})"),
        lambda m: f"s{m[2]}.pathway{_pathway(m[1])}_res{m[3]}.branch2.{m[4]}_bn.{_BN[m[5]]}",
    ),
    (re.compile(r"pred_w"), lambda m: "head.projection.weight"),
    (re.compile(r"pred_b"), lambda m: "head.projection.bias"),
]

_BN_TENSOR = "(weight|bias|running_mean|running_var)"

_PYSLOWFAST_TO_PYTORCHVIDEO: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"s1\.pathway(\d)_stem\.conv\.weight"),
        lambda m: f"blocks.0.multipathway_blocks.{m[1]}.conv.weight",
    ),
    (
        re.compile(rf"s1\.pathway(\d)_stem\.bn\.{_BN_TENSOR}"),
        lambda m: f"blocks.0.multipathway_blocks.{m[1]}.norm.{m[2]}",
    ),
    (
        re.compile(r"s(\d)_fuse\.conv_f2s\.weight"),
        lambda m: f"blocks.{int(m[1]) - 1}.multipathway_fusion.conv_fast_to_slow.weight",
    ),
    (
        re.compile(rf"s(\d)_fuse\.bn\.{_BN_TENSOR}"),
        lambda m: f"blocks.{int(m[1]) - 1}.multipathway_fusion.norm.{m[2]}",
    ),
    (
        re.compile(r"s(\d)\.pathway(\d)_res(\d+)\.branch1\.weight"),
        lambda m: (
            f"blocks.{int(m[1]) - 1}.multipathway_blocks.{m[2]}.res_blocks.{m[3]}"
            ".branch1_conv.weight"
        ),
    ),
    (
        re.compile(rf"s(\d)\.pathway(\d)_res(\d+)\.branch1_bn\.{_BN_TENSOR}"),
        lambda m: (
            f"blocks.{int(m[1]) - 1}.multipathway_blocks.{m[2]}.res_blocks.{m[3]}"
            f".branch1_norm.{m[4]}"
        ),
    ),
    (
        re.compile(r"s(\d)\.pathway(\d)_res(\d+)\.branch2\.([abc])\.weight"),
        lambda m: (
            f"blocks.{int(m[1]) - 1}.multipathway_blocks.{m[2]}.res_blocks.{m[3]}"
            f".branch2.conv_{m[4]}.weight"
        ),
    ),
    (
        re.compile(rf"s(\d)\.pathway(\d)_res(\d+)\.branch2\.([abc])_bn\.{_BN_TENSOR}"),
        lambda m: (
            f"blocks.{int(m[1]) - 1}.multipathway_blocks.{m[2]}.res_blocks.{m[3]}"
            f".branch2.norm_{m[4]}.{m[5]}"
        ),
    ),
    (re.compile(r"head\.projection\.(weight|bias)"), lambda m: f"blocks.6.proj.{m[1]}"),
]


def _rename(
    name: str, table: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]]
) -> str | None:
    for pattern, make in table:
        m = pattern.fullmatch(name)
        if m:
            return make(m)
    return None


def pyslowfast_name(blob: str) -> str | None:
    """PySlowFast's module name for a Caffe2 blob of SlowFast R50; None if it has none."""
    return _rename(blob, _C2_TO_PYSLOWFAST)


def pytorchvideo_name(pyslowfast: str) -> str | None:
    """pytorchvideo ``slowfast_r50``'s name for a PySlowFast tensor name; None if none."""
    return _rename(pyslowfast, _PYSLOWFAST_TO_PYTORCHVIDEO)


def slowfast_state_dict(
    blobs: Mapping[str, np.ndarray], expected: Mapping[str, Tensor], path: str | Path
) -> dict[str, Tensor]:
    """pytorchvideo ``slowfast_r50`` state dict from Caffe2 blobs (see the module docstring).

    ``expected``: the network's own state dict (names, shapes, dtypes). BatchNorm's
    ``num_batches_tracked`` (not in Caffe2) is taken from it. Raises :class:`WeightsError`
    listing every blob without a place, every tensor without a blob, and every shape mismatch.
    """
    state: dict[str, Tensor] = {}
    seen: set[str] = set()  # keys a blob maps to (the tables map no two blobs to one key)
    problems: list[str] = []
    for blob, value in blobs.items():
        middle = pyslowfast_name(blob)
        key = pytorchvideo_name(middle) if middle is not None else None
        if key is None or key not in expected:
            if not any(word in blob for word in _BOOKKEEPING):
                problems.append(f"blob {blob!r} has no place in SlowFast R50 (-> {middle})")
            continue
        ref = expected[key]
        if value.ndim < ref.ndim:  # PySlowFast: pad a blob's shape with trailing ones
            value = value.reshape(value.shape + (1,) * (ref.ndim - value.ndim))
        seen.add(key)
        if tuple(value.shape) != tuple(ref.shape):
            problems.append(
                f"blob {blob!r} has shape {tuple(value.shape)}, {key!r} needs {tuple(ref.shape)}"
            )
            continue
        state[key] = torch.from_numpy(np.array(value, dtype=np.float32)).to(ref.dtype)
    for key, ref in expected.items():
        if key in seen:
            continue
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(ref.shape, dtype=ref.dtype)
        else:
            problems.append(f"no blob for {key!r}")
    if problems:
        raise WeightsError(
            f"{path} does not fit slowfast_r50 ({len(problems)} problem(s)): "
            + "; ".join(problems[:5])
            + ("; ..." if len(problems) > 5 else "")
        )
    return state
