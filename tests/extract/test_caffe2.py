"""PySlowFast's Caffe2 SLOWFAST_8x8_R50.pkl into pytorchvideo's network (extract.caffe2).

The test file is built from Caffe2's naming rules as PySlowFast's converter documents them
(``conv1_w``, ``res_conv1_bn_s``, ``res4_0_branch1_w``, ``res4_4_branch2c_bn_b``,
``t_pool1_subsample_w``, ``t_res4_5_branch2c_bn_subsample_bn_rm``, ``pred_w``, optimizer blobs
such as ``conv1_w_momentum``) and the SlowFast 8x8 R50 architecture (alpha 4, beta 1/8, fusion
channel ratio 2 and kernel 7, stage depths 3-4-6-3, temporal kernels 1-1-3-3 slow and 3 fast).
For each blob the builder below also says where it must land in pytorchvideo's module tree,
from the same loop variables (stage, block, pathway, branch), never by parsing the name: so
the loader's renaming is checked against an independent statement of it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from extract.caffe2 import read_blobs, slowfast_state_dict
from extract.models import (
    SlowFastR50Features,
    WeightsError,
    _meta_state,
    _slowfast_r50_net,
    load_slowfast_r50,
    verify_weights,
)

BN = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}


def caffe2_layout() -> Iterator[tuple[str, tuple[int, ...], str]]:
    """(Caffe2 blob name, shape, pytorchvideo state-dict key) of every SlowFast R50 tensor."""

    def conv_and_bn(c2_conv: str, c2_bn: str, shape: tuple, conv_key: str, bn_key: str):
        yield c2_conv + "_w", shape, conv_key + ".weight"
        for c2, torch_name in BN.items():
            yield f"{c2_bn}_bn_{c2}", (shape[0],), f"{bn_key}.{torch_name}"

    # Stems: slow 64 channels (1x7x7), fast 8 (5x7x7); "t_" names the fast pathway.
    for p, (prefix, width, t) in enumerate((("", 64, 1), ("t_", 8, 5))):
        yield from conv_and_bn(
            f"{prefix}conv1",
            f"{prefix}res_conv1",
            (width, 3, t, 7, 7),
            f"blocks.0.multipathway_blocks.{p}.conv",
            f"blocks.0.multipathway_blocks.{p}.norm",
        )
    # Fast-to-slow fusion after the stem: 8 -> 16 channels, 7x1x1.
    yield from conv_and_bn(
        "t_pool1_subsample",
        "t_pool1_subsample",
        (16, 8, 7, 1, 1),
        "blocks.0.multipathway_fusion.conv_fast_to_slow",
        "blocks.0.multipathway_fusion.norm",
    )
    slow_in, fast_in = 64 + 16, 8
    for stage, depth in zip((2, 3, 4, 5), (3, 4, 6, 3), strict=True):
        k = stage - 2
        slow_inner, fast_inner = 64 * 2**k, 8 * 2**k
        slow_out, fast_out = 256 * 2**k, 32 * 2**k
        pathways = (
            ("", slow_in, slow_inner, slow_out, 1 if stage < 4 else 3),
            ("t_", fast_in, fast_inner, fast_out, 3),
        )
        for p, (prefix, dim_in, inner, out, t) in enumerate(pathways):
            for block in range(depth):
                c2 = f"{prefix}res{stage}_{block}"
                key = f"blocks.{stage - 1}.multipathway_blocks.{p}.res_blocks.{block}"
                cin = dim_in if block == 0 else out
                if block == 0:
                    yield from conv_and_bn(
                        f"{c2}_branch1",
                        f"{c2}_branch1",
                        (out, cin, 1, 1, 1),
                        f"{key}.branch1_conv",
                        f"{key}.branch1_norm",
                    )
                shapes = {"a": (inner, cin, t, 1, 1), "b": (inner, inner, 1, 3, 3)}
                shapes["c"] = (out, inner, 1, 1, 1)
                for letter, shape in shapes.items():
                    yield from conv_and_bn(
                        f"{c2}_branch2{letter}",
                        f"{c2}_branch2{letter}",
                        shape,
                        f"{key}.branch2.conv_{letter}",
                        f"{key}.branch2.norm_{letter}",
                    )
        if stage < 5:  # fusion after the stage's last block, named after its branch2c BN
            c2 = f"t_res{stage}_{depth - 1}_branch2c_bn_subsample"
            yield from conv_and_bn(
                c2,
                c2,
                (2 * fast_out, fast_out, 7, 1, 1),
                f"blocks.{stage - 1}.multipathway_fusion.conv_fast_to_slow",
                f"blocks.{stage - 1}.multipathway_fusion.norm",
            )
        slow_in, fast_in = slow_out + 2 * fast_out, fast_out
    yield "pred_w", (400, 2304), "blocks.6.proj.weight"
    yield "pred_b", (400,), "blocks.6.proj.bias"


LAYOUT = list(caffe2_layout())
OPTIMIZER_BLOBS = ("conv1_w_momentum", "t_res4_5_branch2c_bn_subsample_w_momentum", "lr")


def random_blobs(seed: int = 0) -> dict[str, np.ndarray]:
    """Distinct seeded values per blob, scaled so a forward pass stays finite."""
    rng = np.random.default_rng(seed)
    blobs: dict[str, np.ndarray] = {}
    for name, shape, _ in LAYOUT:
        if name.endswith("_riv"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("_bn_s"):
            value = rng.uniform(0.5, 1.0, shape)
        elif name.endswith(("_bn_b", "_bn_rm", "pred_b")):
            value = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        blobs[name] = value.astype(np.float32)
    for name in OPTIMIZER_BLOBS:
        blobs[name] = np.ones((3,), np.float32)
    blobs["model_iter"] = np.array([196000], np.int64)
    return blobs


def write_pkl(path: Path, blobs: dict, protocol: int = 2) -> Path:
    """A Caffe2-era checkpoint: {"blobs": ...} pickled with numpy's pre-2.0 module names."""
    data = pickle.dumps({"blobs": blobs}, protocol=protocol)
    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def blobs() -> dict[str, np.ndarray]:
    return random_blobs()


@pytest.fixture(scope="module")
def pkl(tmp_path_factory: pytest.TempPathFactory, blobs) -> Path:
    return write_pkl(tmp_path_factory.mktemp("c2") / "SLOWFAST_8x8_R50.pkl", blobs)


def test_the_layout_covers_the_network():
    """The blob list names every tensor pytorchvideo's slowfast_r50 has, with its shape."""
    meta = _meta_state("slowfast_r50")
    keys = {key: shape for _, shape, key in LAYOUT}
    assert len(keys) == len(LAYOUT)  # no two blobs for one tensor
    expected = {k: tuple(v.shape) for k, v in meta.items() if "num_batches_tracked" not in k}
    assert keys == expected


def test_pkl_loads_every_tensor_in_its_place(pkl, blobs):
    model, info = load_slowfast_r50(pkl)
    assert info.path == str(pkl)
    assert info.sha256 == hashlib.sha256(pkl.read_bytes()).hexdigest()
    state = model.net.state_dict()
    for name, _, key in LAYOUT:
        assert torch.equal(state[key], torch.from_numpy(blobs[name])), (name, key)


def test_output_equals_the_network_holding_the_same_tensors(pkl, blobs):
    loaded, _ = load_slowfast_r50(pkl)
    net = _slowfast_r50_net()
    net.load_state_dict(
        {key: torch.from_numpy(blobs[name]) for name, _, key in LAYOUT}, strict=False
    )
    reference = SlowFastR50Features(net.eval()).eval()
    g = torch.Generator().manual_seed(5)
    frames = torch.randint(0, 256, (1, 32, 224, 224, 3), dtype=torch.uint8, generator=g)
    out = loaded(frames)
    assert torch.isfinite(out).all() and out.abs().max() > 0
    assert torch.equal(out, reference(frames))


def test_verify_weights_reads_the_pkl(pkl):
    info = verify_weights("slowfast_r50", pkl)
    assert info.path == str(pkl) and len(info.sha256) == 64


def test_protocol_4_and_python3_module_names_load_too(tmp_path, blobs):
    path = tmp_path / "p4.pkl"
    path.write_bytes(pickle.dumps({"blobs": blobs}, protocol=4))
    assert set(read_blobs(path)) == set(blobs)


def test_pickle_with_a_code_global_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"

    class RunsCode:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"blobs": {"conv1_w": RunsCode()}}, protocol=2))
    with pytest.raises(WeightsError) as err:
        load_slowfast_r50(path)
    message = str(err.value)
    assert str(path) in message and "refused" in message and "makedirs" in message
    assert not marker.exists()


def test_object_arrays_are_refused(tmp_path):
    path = write_pkl(tmp_path / "objects.pkl", {"conv1_w": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(WeightsError, match=r"objects\.pkl refused: .*holds objects"):
        read_blobs(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not a readable Caffe2 checkpoint pickle"),
        (b"<html>404</html>", "not a readable Caffe2 checkpoint pickle"),
        (pickle.dumps({"weights": {}}), 'not a Caffe2 checkpoint with "blobs"'),
        (pickle.dumps({"blobs": {"conv1_w": "text"}}), "'conv1_w' is not a numeric array"),
    ],
)
def test_unreadable_files_name_themselves(tmp_path, content, match):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=match) as err:
        load_slowfast_r50(path)
    assert str(path) in str(err.value)


def zero_blobs() -> dict[str, np.ndarray]:
    """The layout's blobs as zero-cost zero views (for the renaming checks, no forward)."""
    return {name: np.broadcast_to(np.float32(0), shape) for name, shape, _ in LAYOUT}


def test_every_problem_with_the_blobs_is_named():
    expected = _meta_state("slowfast_r50")
    blobs = zero_blobs()
    assert len(slowfast_state_dict(blobs, expected, "ok.pkl")) == len(expected)
    del blobs["res4_3_branch2b_w"]
    blobs["t_res3_1_branch2a_bn_s"] = np.zeros(7, np.float32)
    blobs["nonlocal_conv3_1_theta_w"] = np.zeros(1, np.float32)
    with pytest.raises(WeightsError) as err:
        slowfast_state_dict(blobs, expected, "x.pkl")
    message = str(err.value)
    assert message.startswith("x.pkl does not fit slowfast_r50 (3 problem(s))")
    assert "'t_res3_1_branch2a_bn_s' has shape (7,)" in message
    assert "'nonlocal_conv3_1_theta_w' has no place" in message
    assert "no blob for 'blocks.3.multipathway_blocks.0.res_blocks.3.branch2.conv_b.weight'" in (
        message
    )


def test_a_linear_blob_with_fewer_dimensions_gets_trailing_ones():
    """PySlowFast's rule for blobs of fewer dimensions (e.g. a linear layer read as a conv)."""
    expected = dict(_meta_state("slowfast_r50"))
    conv_like = torch.empty(400, 2304, 1, 1, 1, device="meta")
    expected["blocks.6.proj.weight"] = conv_like
    state = slowfast_state_dict(zero_blobs(), expected, "x.pkl")
    assert state["blocks.6.proj.weight"].shape == (400, 2304, 1, 1, 1)
