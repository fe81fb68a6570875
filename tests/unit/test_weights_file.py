"""safetensors headers: tiny files written in tmp_path; only headers are read."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from suanli.errors import ConfigError
from suanli.spec.weights_file import (
    HEADER_CAP_BYTES,
    read_safetensors_dir,
    read_safetensors_header,
)

ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "I32": 4, "U8": 1}


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]],
                      metadata: dict[str, str] | None = None) -> Path:
    """The format by hand: u64 little-endian header length, JSON header, zeroed data buffer."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = ITEMSIZE[dtype] * (shape[0] if len(shape) == 1 else shape[0] * shape[1] if shape else 1)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return path


def raw_file(path: Path, header: bytes, data: bytes = b"", length: int | None = None) -> Path:
    n = len(header) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + header + data)
    return path


# ---- safetensors ---------------------------------------------------------------------------------------


def test_header_by_hand(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "model.safetensors", {
        "embed.weight": ("BF16", [100, 64]), "norm.weight": ("F32", [64]), "q.weight": ("I8", [64, 64]),
    }, {"format": "pt"})
    h = read_safetensors_header(path)
    assert h.tensor_count == 3
    assert h.total_params == 6400 + 64 + 4096
    assert dict(h.params_by_dtype) == {"BF16": 6400, "F32": 64, "I8": 4096}
    assert dict(h.bytes_by_dtype) == {"BF16": 12800, "F32": 256, "I8": 4096}
    assert h.total_bytes == h.file_bytes - 8 - h.header_bytes
    assert h.tensors["embed.weight"].shape == (100, 64)
    assert h.metadata == {"format": "pt"}


def test_header_written_by_safetensors_package(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "m.safetensors"
    st.save_file({"a": np.zeros((3, 5), np.float16), "b": np.zeros((7,), np.float32),
                  "c": np.zeros((2, 2, 2), np.int8)}, str(path), metadata={"format": "np"})
    h = read_safetensors_header(path)
    assert dict(h.params_by_dtype) == {"F16": 15, "F32": 7, "I8": 8}
    assert h.total_bytes == 15 * 2 + 7 * 4 + 8
    assert h.tensors["c"].shape == (2, 2, 2)


def test_short_file(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"\x01\x02\x03")
    with pytest.raises(ConfigError, match="3 bytes, fewer than the 8-byte"):
        read_safetensors_header(path)


def test_header_longer_than_file(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "x.safetensors", b"{}", length=5000)
    with pytest.raises(ConfigError, match=r"claims 5000 bytes, file has 10; the file is truncated"):
        read_safetensors_header(path)


def test_header_over_cap(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "x.safetensors", b"{}", length=HEADER_CAP_BYTES + 1)
    with pytest.raises(ConfigError, match="100 MiB"):
        read_safetensors_header(path)


def test_git_lfs_pointer(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 4976698672\n")
    with pytest.raises(ConfigError, match="Git LFS pointer"):
        read_safetensors_header(path)


@pytest.mark.parametrize(("header", "message"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON list"),
    (b'{"w": {"dtype": "F17", "shape": [2], "data_offsets": [0, 4]}}', "unknown dtype 'F17'"),
    (b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', r"8 bytes, but data_offsets \[0, 4\]"),
    (b'{"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}', "non-negative integers"),
    (b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}', "begin <= end"),
    (b'{"w": {"dtype": "F32", "shape": [2]}}', "needs dtype, shape and data_offsets"),
    (b'{"__metadata__": [1], "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', "__metadata__"),
])
def test_malformed_headers(tmp_path: Path, header: bytes, message: str) -> None:
    path = raw_file(tmp_path / "x.safetensors", header, data=bytes(8))
    with pytest.raises(ConfigError, match=message):
        read_safetensors_header(path)


def test_truncated_data(tmp_path: Path) -> None:
    header = b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'
    path = raw_file(tmp_path / "x.safetensors", header, data=bytes(10))
    with pytest.raises(ConfigError, match="ends at byte 16 of a data buffer of 10 bytes; the file is trunc"):
        read_safetensors_header(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_safetensors_header(tmp_path / "nope.safetensors")


# ---- directories -----------------------------------------------------------------------------------------


def sharded(tmp_path: Path) -> Path:
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors",
                      {"embed.weight": ("BF16", [100, 64]), "layer.0.w": ("BF16", [64, 64])})
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors",
                      {"layer.1.w": ("BF16", [64, 64]), "norm.weight": ("F32", [64])})
    first, second = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    weight_map = {"embed.weight": first, "layer.0.w": first, "layer.1.w": second, "norm.weight": second}
    index = {"metadata": {"total_size": 6400 * 2 + 2 * 4096 * 2 + 256}, "weight_map": weight_map}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    return tmp_path


def test_sharded_directory_with_index(tmp_path: Path) -> None:
    directory = sharded(tmp_path)
    write_safetensors(directory / "consolidated.safetensors", {"other": ("F32", [4])})  # not in the index
    w = read_safetensors_dir(directory)
    assert w.tensor_count == 4 and len(w.files) == 2
    assert w.total_params == 6400 + 2 * 4096 + 64
    assert w.total_bytes == 6400 * 2 + 2 * 4096 * 2 + 256  # the index's metadata.total_size
    assert dict(w.params_by_dtype) == {"BF16": 6400 + 8192, "F32": 64}
    assert w.tensors["layer.1.w"].shape == (64, 64)
    assert "lm_head.weight" not in w.tensors  # callers detect tied embeddings this way


def test_index_with_missing_shard(tmp_path: Path) -> None:
    directory = sharded(tmp_path)
    (directory / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ConfigError, match=r"lists 2 shards but 1 are missing .*model-00002-of-00002"):
        read_safetensors_dir(directory)


def test_index_naming_absent_tensor(tmp_path: Path) -> None:
    directory = sharded(tmp_path)
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    index["weight_map"]["lm_head.weight"] = "model-00002-of-00002.safetensors"
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ConfigError, match=r"'lm_head\.weight' in model-00002-of-00002\.safetensors"):
        read_safetensors_dir(directory)


def test_directory_without_index(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "a.safetensors", {"x": ("F16", [8])})
    write_safetensors(tmp_path / "b.safetensors", {"y": ("F16", [8])})
    assert read_safetensors_dir(tmp_path).total_params == 16
    write_safetensors(tmp_path / "c.safetensors", {"x": ("F16", [8])})
    with pytest.raises(ConfigError, match="'x' is in both"):
        read_safetensors_dir(tmp_path)


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no \*\.safetensors"):
        read_safetensors_dir(tmp_path)
