"""sca.model_zoo's API and its downloads: configs from anywhere, offline failures, checksums."""

import hashlib
import http.server
import os
import subprocess
import sys
import threading

import pytest
from conftest import REPO, SHARED_DATA

from sca.model_zoo import RELEASES, get_checkpoint_url, get_config, list_configs, release_cache
from sca.modeling.sam_checkpoint import load_sam_state_dict
from sca.utils.download import ChecksumError, DownloadError, download

CLOSED_PORT_URL = "http://127.0.0.1:9"  # the discard port: nothing listens, refused at once


def run_python(code: str, cwd, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,  # a hang guard only: offline failures come within seconds
    )


def test_every_shipped_config_loads_from_another_folder(tmp_path):
    shipped = sorted(
        str(p.relative_to(REPO / "configs")) for p in (REPO / "configs").rglob("*.yaml")
    )
    assert list_configs() == shipped
    code = (
        "from sca import model_zoo\n"
        "for name in model_zoo.list_configs():\n"
        "    cfg = model_zoo.get_config(name)\n"
        "    assert model_zoo.get_config_file(name).endswith(name)\n"
        "    print(name, cfg.MODEL.META_ARCHITECTURE)\n"
        "for name in model_zoo.RELEASES:\n"
        "    print(name, model_zoo.get_config(name).MODEL.SCA.LM.TASK_NAMES)\n"
    )
    out = run_python(code, tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines[: len(shipped)]] == shipped
    assert all(line.endswith("SegmentCaptionAnything") for line in lines[: len(shipped)])
    assert all("'recognition', 'caption'" in line for line in lines[len(shipped) :])


def test_unknown_names_and_unpublished_weights_are_explained():
    with pytest.raises(RuntimeError, match="not a config of the SCA model zoo"):
        get_config("sca_nonexistent")
    with pytest.raises(RuntimeError, match="No trained weights are published for 'sca_vg.yaml'"):
        get_config("sca_vg.yaml", trained=True)
    assert get_checkpoint_url("sca_gpt2_large_vg").startswith(
        "https://huggingface.co/xk-huang/segment-caption-anything-gpt2_large-vg"
    )


def test_release_without_network_fails_at_once_with_what_to_do(tmp_path):
    code = (
        "from sca import model_zoo\n"
        "try:\n"
        "    model_zoo.get('sca_gpt2_large_vg', trained=True)\n"
        "except OSError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = run_python(
        code,
        tmp_path,
        SCA_CACHE=str(tmp_path / "cache"),
        HF_HOME=str(tmp_path / "hf"),
        HF_ENDPOINT=CLOSED_PORT_URL,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("DownloadError Cannot download the SCA release")
    assert "xk-huang/segment-caption-anything-gpt2_large-vg" in out.stdout
    assert "tools/convert_sca_release.py" in out.stdout
    assert not (tmp_path / "cache" / "converted").exists()


def test_sam_download_without_network_names_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SCA_CACHE", str(tmp_path))
    with pytest.raises(DownloadError, match=str(tmp_path / "downloads" / "sam_vit_b_01ec64.pth")):
        load_sam_state_dict(f"{CLOSED_PORT_URL}/sam_vit_b_01ec64.pth")


def test_corrupt_cached_sam_checkpoint_is_rejected_and_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("SCA_CACHE", str(tmp_path))
    cached = tmp_path / "downloads" / "sam_vit_b_01ec64.pth"
    cached.parent.mkdir()
    cached.write_bytes(b"truncated download")
    with pytest.raises(ChecksumError, match="does not match the published 01ec64"):
        load_sam_state_dict("https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth")
    assert not cached.exists()


class _Server:
    """A loopback HTTP server that serves ``body``, optionally promising more than it sends."""

    def __init__(self, body: bytes, promised: int | None = None):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(promised or len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_is_verified_cached_and_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv("SCA_CACHE", str(tmp_path))
    body = os.urandom(3 << 20)
    digest = hashlib.sha256(body).hexdigest()
    server = _Server(body)
    try:
        path = download(f"{server.url}/w.bin", sha256=digest)
        assert path.read_bytes() == body
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would create it
        with pytest.raises(ChecksumError):
            download(f"{server.url}/other.bin", sha256="0" * 64)
        assert not (tmp_path / "downloads" / "other.bin").exists()
    finally:
        server.close()
    assert download(f"{server.url}/w.bin", sha256=digest) == path  # served from the cache

    short = _Server(body[:1000], promised=len(body))
    try:
        with pytest.raises(DownloadError):
            download(f"{short.url}/cut.bin")
    finally:
        short.close()
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == ["w.bin"]


def test_release_files_are_checked_against_the_hub_checksum(tmp_path, monkeypatch):
    folder = tmp_path / "snapshot"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"corrupted")
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda *a, **k: str(folder))
    published = {"model.safetensors": hashlib.sha256(b"the real weights").hexdigest()}
    monkeypatch.setattr(release_cache, "_published_sha256", lambda release: published)
    with pytest.raises(ChecksumError, match="differs from the hub"):
        release_cache.download_release(RELEASES["sca_gpt2_large_vg"])
    assert not (folder / "model.safetensors").exists()


OFFICIAL = SHARED_DATA / "sca_official_tiny"
needs_official = pytest.mark.skipif(
    not (OFFICIAL / "config.json").is_file(), reason="../shared/data is absent"
)


@needs_official
def test_a_release_is_converted_once_then_served_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCA_CACHE", str(tmp_path))
    monkeypatch.setattr(release_cache, "download_release", lambda release: OFFICIAL)
    calls = []
    convert = release_cache.convert_release
    monkeypatch.setattr(release_cache, "convert_release", lambda *a: calls.append(a) or convert(*a))
    first = get_config("sca_gpt2_large_vg", trained=True)
    second = get_config("sca_gpt2_large_vg", trained=True)
    assert len(calls) == 1
    assert first.MODEL.WEIGHTS == second.MODEL.WEIGHTS
    assert first.MODEL.WEIGHTS.startswith(str(tmp_path / "converted" / "sca_gpt2_large_vg@main"))
    assert first.MODEL.SCA.LM.TASK == "caption" and not first.MODEL.SCA.LM.LOAD_WEIGHTS


@needs_official
def test_sharded_pytorch_bin_releases_read_like_safetensors(tmp_path):
    import json

    import torch

    from sca.model_zoo.release_io import read_release_weights

    state = read_release_weights(OFFICIAL)
    keys = sorted(state)
    shards = {
        "pytorch_model-00001-of-00002.bin": keys[::2],
        "pytorch_model-00002-of-00002.bin": keys[1::2],
    }
    for name, part in shards.items():
        torch.save({k: state[k] for k in part}, tmp_path / name)
    weight_map = {k: name for name, part in shards.items() for k in part}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    sharded = read_release_weights(tmp_path)
    assert sorted(sharded) == keys
    assert all(torch.equal(sharded[k], state[k]) for k in keys)
