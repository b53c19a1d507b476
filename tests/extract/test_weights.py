"""Weight files that fetch themselves (extract.weights, extract.models), against a local server.

Files are served from 127.0.0.1 only: a good file, a corrupted one, and a connection that drops
halfway. The published URLs are pointed at that server for the test; nothing else is reached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from extract import weights
from extract.models import (
    WeightsError,
    _meta_state,
    load_resnet152,
    verify_weights,
    weight_file_status,
)
from extract.weights import download, hub_checkpoint_path, offline_from_env
from pipelines.cli.main import main


def tiny_resnet_file() -> bytes:
    """A ResNet-152 state dict of zeros stored as broadcast views: a few KiB, loads fine."""
    state = {
        k: torch.zeros((), dtype=v.dtype).expand(v.shape)
        for k, v in _meta_state("resnet152").items()
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


GOOD = tiny_resnet_file()
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()
CORRUPT = GOOD[: len(GOOD) // 2] + bytes([GOOD[len(GOOD) // 2] ^ 0xFF]) + GOOD[len(GOOD) // 2 + 1 :]
JUNK = b"<html><body>Service unavailable</body></html>"  # what a captive portal might serve


class Server:
    """A threaded HTTP server on 127.0.0.1: /good, /corrupt (one byte flipped), /junk (not a
    weight file), /drop (half the bytes, then the connection closes), anything else 404.
    Records the paths requested."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                served = {"/good": GOOD, "/corrupt": CORRUPT, "/drop": GOOD, "/junk": JUNK}
                body = served.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path == "/drop":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache; returns its checkpoints folder. Online (for these tests)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HERO_OFFLINE", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def publish_resnet_at(monkeypatch: pytest.MonkeyPatch, url: str, prefix: str | None) -> str:
    """Point the published ResNet-152 file at ``url`` (with this sha256 prefix), and the
    SlowFast files at a 404 of the same server: no test request leaves 127.0.0.1."""
    server = url.rsplit("/", 1)[0]

    def moved(f: weights.WeightFile) -> weights.WeightFile:
        if f.model == "resnet152":
            return dataclasses.replace(f, url=url, sha256_prefix=prefix)
        return dataclasses.replace(f, url=f"{server}/missing/{f.file_name}")

    monkeypatch.setattr(weights, "WEIGHT_FILES", tuple(map(moved, weights.WEIGHT_FILES)))
    return weights.RESNET152_FILE.file_name


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- download() ---------------------------------------------------------------------------


def test_good_file_downloads_atomically_with_its_checksum(server, tmp_path):
    dest = tmp_path / "cache" / "w.pth"
    sha = download(f"{server.url}/good", dest, sha256_prefix=GOOD_SHA[:8])
    assert sha == GOOD_SHA and dest.read_bytes() == GOOD
    assert leftovers(dest.parent) == ["w.pth"]


def test_corrupted_file_is_refused_and_nothing_is_kept(server, tmp_path):
    dest = tmp_path / "cache" / "w.pth"
    with pytest.raises(WeightsError) as err:
        download(f"{server.url}/corrupt", dest, sha256_prefix=GOOD_SHA[:8])
    message = str(err.value)
    assert f"{server.url}/corrupt" in message and GOOD_SHA[:8] in message
    assert "refused, nothing was kept" in message
    assert leftovers(dest.parent) == []


def test_dropped_connection_fails_and_nothing_is_kept(server, tmp_path):
    dest = tmp_path / "cache" / "w.pth"
    with pytest.raises(WeightsError, match="nothing was kept") as err:
        download(f"{server.url}/drop", dest)  # no checksum to catch it: the length must
    assert f"{server.url}/drop" in str(err.value)
    assert leftovers(dest.parent) == []


def test_missing_url_and_refused_check(server, tmp_path):
    dest = tmp_path / "cache" / "w.pth"
    with pytest.raises(WeightsError, match=r"HTTPError: Not Found|HTTP Error 404"):
        download(f"{server.url}/nothing-here", dest)

    def refuse(path: Path) -> None:
        assert path.read_bytes() == GOOD  # checked before it is moved into place
        raise WeightsError("not what we wanted")

    with pytest.raises(WeightsError, match="not what we wanted"):
        download(f"{server.url}/good", dest, check=refuse)
    assert leftovers(dest.parent) == []


# --- the loaders fetch a missing default file ------------------------------------------------


def test_missing_default_is_downloaded_into_the_hub_cache(server, hub, monkeypatch):
    name = publish_resnet_at(monkeypatch, f"{server.url}/good", GOOD_SHA[:8])
    model, info = load_resnet152()
    assert info.path == str(hub / name) and info.sha256 == GOOD_SHA
    assert (hub / name).read_bytes() == GOOD and server.requests == ["/good"]
    assert torch.equal(model.net.conv1.weight, torch.zeros(64, 3, 7, 7))
    load_resnet152()  # found in the cache: no second request
    assert server.requests == ["/good"]


def test_corrupted_download_leaves_the_cache_empty(server, hub, monkeypatch):
    publish_resnet_at(monkeypatch, f"{server.url}/corrupt", GOOD_SHA[:8])
    with pytest.raises(WeightsError) as err:
        verify_weights("resnet152")
    assert "does not start with" in str(err.value) and f"{server.url}/corrupt" in str(err.value)
    assert leftovers(hub) == []


def test_a_download_that_is_not_weights_is_refused(server, hub, monkeypatch):
    """No published checksum (like the SlowFast files): reading the file is the check. (It
    cannot catch a flipped byte inside tensor data: /corrupt would pass it; only a checksum
    does.)"""
    publish_resnet_at(monkeypatch, f"{server.url}/junk", None)
    with pytest.raises(WeightsError, match="not usable resnet152 weights") as err:
        load_resnet152()
    assert "nothing was kept" in str(err.value)
    assert leftovers(hub) == []


def test_offline_never_downloads(server, hub, monkeypatch):
    publish_resnet_at(monkeypatch, f"{server.url}/good", GOOD_SHA[:8])
    with pytest.raises(WeightsError) as err:
        load_resnet152(offline=True)
    assert f"{server.url}/good" in str(err.value) and "offline" in str(err.value)
    monkeypatch.setenv("HERO_OFFLINE", "1")
    assert offline_from_env()
    with pytest.raises(WeightsError, match="offline"):
        verify_weights("resnet152")
    assert server.requests == [] and leftovers(hub) == []
    for value in ("", "0", "false", "no"):
        monkeypatch.setenv("HERO_OFFLINE", value)
        assert not offline_from_env()


def test_a_given_path_is_never_downloaded(server, hub, monkeypatch, tmp_path):
    publish_resnet_at(monkeypatch, f"{server.url}/good", GOOD_SHA[:8])
    with pytest.raises(WeightsError, match=r"elsewhere\.pth does not exist"):
        load_resnet152(tmp_path / "elsewhere.pth")
    assert server.requests == []


def test_random_weights_stay_opt_in(server, hub, monkeypatch):
    """A failed download is an error, never a silent fall back to random weights."""
    publish_resnet_at(monkeypatch, f"{server.url}/drop", None)
    with pytest.raises(WeightsError):
        load_resnet152()


# --- the command line ---------------------------------------------------------------------------


def test_hero_extract_offline_flag_names_the_url(server, hub, monkeypatch, tmp_path):
    publish_resnet_at(monkeypatch, f"{server.url}/good", GOOD_SHA[:8])
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    result = CliRunner().invoke(
        main, ["extract", str(video), "--output", str(tmp_path / "o"), "--offline"]
    )
    assert result.exit_code == 1, result.output
    assert f"{server.url}/good" in result.output and "Traceback" not in result.output
    assert server.requests == []


def test_hero_weights_lists_files_where_found_and_checksums(server, hub, monkeypatch):
    name = publish_resnet_at(monkeypatch, f"{server.url}/good", GOOD_SHA[:8])
    result = CliRunner().invoke(main, ["weights", "--json"])
    assert result.exit_code == 1  # nothing in the cache, nothing downloaded without --download
    rows = json.loads(result.stdout)
    assert [(r["model"], r["file_name"], r["default"], r["found"]) for r in rows] == [
        ("resnet152", name, True, "missing"),
        ("slowfast_r50", "SLOWFAST_8x8_R50.pkl", True, "missing"),
        ("slowfast_r50", "SLOWFAST_8x8_R50.pyth", False, "missing"),
    ]
    assert f"{server.url}/good" in rows[0]["loads"] and server.requests == []

    result = CliRunner().invoke(main, ["weights", "--json", "--download"])
    assert result.exit_code == 1  # SlowFast's files: 404 here
    row, slowfast, _ = json.loads(result.stdout)
    assert slowfast["found"] == "missing"
    assert server.requests == ["/good", "/missing/SLOWFAST_8x8_R50.pkl"]
    assert (row["found"], row["sha256"], row["checksum"], row["loads"]) == (
        "downloaded",
        GOOD_SHA,
        "ok",
        "ok",
    )
    assert row["path"] == str(hub_checkpoint_path(name))


def test_hero_weights_table_flags_a_checksum_mismatch(hub, monkeypatch, tmp_path):
    hub.mkdir(parents=True)
    (hub / "resnet152-394f9c45.pth").write_bytes(GOOD)  # not the published bytes
    status = weight_file_status("resnet152")
    assert (status.found, status.checksum, status.loads) == ("hub cache", "MISMATCH", "ok")
    result = CliRunner().invoke(main, ["weights", "--slowfast-weights", str(tmp_path / "x.pkl")])
    assert "MISMATCH" in result.output and "hub cache" in result.output
    assert "x.pkl does not exist" in result.output
    assert result.exit_code == 1  # the given SlowFast file is missing


def test_hero_weights_lists_the_files_of_the_chosen_features(hub):
    result = CliRunner().invoke(
        main, ["weights", "--json", "--features", "clip_vit_b32,milnce_s3d", "--offline"]
    )
    assert result.exit_code == 1, result.output  # an empty cache, nothing downloaded
    rows = json.loads(result.stdout)
    assert [(r["model"], r["file_name"], r["default"], r["found"]) for r in rows] == [
        ("clip_vit_b32", "ViT-B-32.pt", True, "missing"),
        ("s3d_howto100m", "s3d_howto100m.pth", True, "missing"),
    ]
    unknown = CliRunner().invoke(main, ["weights", "--features", "clip"])
    assert unknown.exit_code != 0 and "unknown feature set 'clip'" in unknown.output
