"""Weight-file headers: tensor names, dtypes and shapes from safetensors files, never the weights.

safetensors (huggingface/safetensors, README "Format"): an 8-byte little-endian u64 ``N``, then ``N``
bytes of UTF-8 JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``,
then the data buffer; offsets count from the start of that buffer. Read here with the standard library.

``TensorInfo`` and the ``TensorTable`` totals are shared with ``gguf`` (GGUF headers). Shapes are
row-major (PyTorch order, outermost first).
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

from suanli.errors import ConfigError
from suanli.i18n import Text
from suanli.units import MiB

HEADER_CAP_BYTES = 100 * MiB
# Bits per element of each safetensors dtype code (safetensors Dtype::bitsize, 0.6).
SAFETENSORS_DTYPE_BITS: Mapping[str, int] = MappingProxyType({
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "C64": 64, "F64": 64, "I64": 64, "U64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
})
_LFS_POINTER = b"version https://git-lfs"


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorInfo:
    name: str
    dtype: str  # safetensors code ("BF16") or ggml type name ("Q4_K")
    shape: tuple[int, ...]  # row-major
    nbytes: int

    @property
    def numel(self) -> int:
        """Elements as stored: a packed tensor (GPTQ qweight in I32) counts its int32 words."""
        return math.prod(self.shape)


class TensorTable:
    """Totals derived from ``tensors``; mixed into the header/file types below."""

    __slots__ = ()
    tensors: Mapping[str, TensorInfo]

    @property
    def tensor_count(self) -> int:
        return len(self.tensors)

    @property
    def total_params(self) -> int:
        return sum(t.numel for t in self.tensors.values())

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    @property
    def params_by_dtype(self) -> Mapping[str, int]:
        return _sum_by(self.tensors.values(), "numel")

    @property
    def bytes_by_dtype(self) -> Mapping[str, int]:
        return _sum_by(self.tensors.values(), "nbytes")


def _sum_by(tensors: Iterable[TensorInfo], attribute: str) -> Mapping[str, int]:
    totals: dict[str, int] = {}
    for t in tensors:
        totals[t.dtype] = totals.get(t.dtype, 0) + int(getattr(t, attribute))
    return MappingProxyType(dict(sorted(totals.items())))


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetensorsHeader(TensorTable):
    path: str
    header_bytes: int
    file_bytes: int
    tensors: Mapping[str, TensorInfo]
    metadata: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredWeights(TensorTable):
    """All tensors of a checkpoint directory, as stored (dtypes, shapes, bytes)."""

    files: tuple[str, ...]
    tensors: Mapping[str, TensorInfo]
    metadata: Mapping[str, str]


# ---- safetensors ---------------------------------------------------------------------------------------


def read_safetensors_header(path: str | Path) -> SafetensorsHeader:
    """Parse and check the header of one .safetensors file; reads 8 + N bytes, never the weights."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            file_bytes = os.fstat(f.fileno()).st_size
            header_len = _header_length(path, f, file_bytes)
            raw = f.read(header_len)
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}", key="error.safetensors.unreadable",
                          fields={"path": path, "reason": err.strerror or err}) from err
    entries = _header_json(path, raw)
    metadata = entries.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise ConfigError(f"{path}: __metadata__ must be an object of strings, got {type(metadata).__name__}",
                          key="error.safetensors.metadata_not_object",
                          fields={"path": path, "kind": type(metadata).__name__})
    data_bytes = file_bytes - 8 - header_len
    tensors = {name: _tensor_info(path, name, entry, data_bytes) for name, entry in entries.items()}
    return SafetensorsHeader(path=str(path), header_bytes=header_len, file_bytes=file_bytes,
                             tensors=MappingProxyType(tensors),
                             metadata=MappingProxyType({str(k): str(v) for k, v in metadata.items()}))


def _header_length(path: Path, f: BinaryIO, file_bytes: int) -> int:
    first = f.read(8)
    if first == _LFS_POINTER[:8] and f.read(len(_LFS_POINTER) - 8) == _LFS_POINTER[8:]:
        raise ConfigError(f"{path} is a Git LFS pointer, not the weights; run `git lfs pull` in its repo",
                          key="error.safetensors.lfs_pointer", fields={"path": path})
    if len(first) < 8:
        raise ConfigError(f"{path} has {file_bytes} bytes, fewer than the 8-byte header length; "
                          "the file is truncated or not safetensors", key="error.safetensors.too_short",
                          fields={"path": path, "file_bytes": file_bytes})
    (header_len,) = struct.unpack("<Q", first)
    if header_len > HEADER_CAP_BYTES:
        raise ConfigError(f"header of {path} claims {header_len} bytes, over the {HEADER_CAP_BYTES} byte "
                          "(100 MiB) limit; the file is corrupt or not safetensors",
                          key="error.safetensors.header_too_big",
                          fields={"path": path, "header_len": header_len, "cap": HEADER_CAP_BYTES})
    if header_len > file_bytes - 8:
        raise ConfigError(f"header of {path} claims {header_len} bytes, file has {file_bytes}; "
                          "the file is truncated or not safetensors", key="error.safetensors.header_truncated",
                          fields={"path": path, "header_len": header_len, "file_bytes": file_bytes})
    return int(header_len)


def _header_json(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        entries = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"header of {path} is not valid JSON ({err}); the file is corrupt or not "
                          "safetensors", key="error.safetensors.header_not_json",
                          fields={"path": path, "reason": err}) from err
    if not isinstance(entries, dict):
        raise ConfigError(f"header of {path} is a JSON {type(entries).__name__}, not an object of tensors",
                          key="error.safetensors.header_not_object",
                          fields={"path": path, "kind": type(entries).__name__})
    return entries


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor_info(path: Path, name: str, entry: object, data_bytes: int) -> TensorInfo:
    where = f"{path}: tensor {name!r}"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise ConfigError(f"{where} needs dtype, shape and data_offsets, got {entry!r:.120}",
                          key="error.safetensors.tensor_fields", fields={"path": path, "name": name, "entry": entry})
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in SAFETENSORS_DTYPE_BITS:
        known = ", ".join(SAFETENSORS_DTYPE_BITS)
        raise ConfigError(f"{where} has unknown dtype {dtype!r}; known: {known}", key="error.safetensors.unknown_dtype",
                          fields={"path": path, "name": name, "dtype": dtype, "known": known})
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise ConfigError(f"{where} has shape {shape!r}; expected a list of non-negative integers",
                          key="error.safetensors.bad_shape", fields={"path": path, "name": name, "shape": shape})
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)
            and offsets[0] <= offsets[1]):
        raise ConfigError(f"{where} has data_offsets {offsets!r}; expected [begin, end] with begin <= end",
                          key="error.safetensors.bad_offsets", fields={"path": path, "name": name, "offsets": offsets})
    bits = math.prod(shape) * SAFETENSORS_DTYPE_BITS[dtype]
    span = offsets[1] - offsets[0]
    if bits % 8 or span != bits // 8:
        raise ConfigError(f"{where} is {dtype}{shape}, {bits / 8:g} bytes, but data_offsets {offsets} span "
                          f"{span}; the header is corrupt", key="error.safetensors.span_mismatch",
                          fields={"path": path, "name": name, "dtype": dtype, "shape": shape, "nbytes": bits / 8,
                                  "offsets": offsets, "span": span})
    if offsets[1] > data_bytes:
        raise ConfigError(f"{where} ends at byte {offsets[1]} of a data buffer of {data_bytes} bytes; the "
                          "file is truncated, download it again", key="error.safetensors.tensor_truncated",
                          fields={"path": path, "name": name, "end": offsets[1], "data_bytes": data_bytes})
    return TensorInfo(name=name, dtype=dtype, shape=tuple(shape), nbytes=span)


def read_safetensors_dir(directory: str | Path) -> StoredWeights:
    """All *.safetensors in ``directory``, or with model.safetensors.index.json the shards it names."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory", key="error.safetensors.not_directory",
                          fields={"directory": directory})
    index = _index_file(directory)
    weight_map = _weight_map(index) if index else {}
    files = _shards(directory, index, weight_map)
    headers = [read_safetensors_header(f) for f in files]
    tensors = _merge_tensors(headers)
    for name, shard in weight_map.items():
        if name not in tensors:
            raise ConfigError(f"{index} places {name!r} in {shard}, whose header has no such tensor; the "
                              "index and shards come from different revisions, download them again",
                              key="error.safetensors.index_tensor_missing",
                              fields={"index": index, "name": name, "shard": shard})
    metadata = {k: v for h in headers for k, v in h.metadata.items()}
    return StoredWeights(files=tuple(str(f) for f in files), tensors=MappingProxyType(tensors),
                         metadata=MappingProxyType(metadata))


def _index_file(directory: Path) -> Path | None:
    preferred = directory / "model.safetensors.index.json"
    if preferred.is_file():
        return preferred
    found = sorted(directory.glob("*.safetensors.index.json"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ConfigError(f"{directory} has {len(found)} safetensors indexes ({names}); point at one model",
                          key="error.safetensors.several_indexes",
                          fields={"directory": directory, "count": len(found), "names": names})
    return found[0] if found else None


def _weight_map(index: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as err:
        raise ConfigError(f"{index} is not a readable safetensors index ({err})",
                          key="error.safetensors.index_unreadable", fields={"index": index, "reason": err}) from err
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ConfigError(f"{index} has no weight_map object of tensor name -> shard file",
                          key="error.safetensors.no_weight_map", fields={"index": index})
    return weight_map


def _shards(directory: Path, index: Path | None, weight_map: Mapping[str, str]) -> list[Path]:
    if index is None:
        files = sorted(directory.glob("*.safetensors"))
        if not files:
            raise ConfigError(f"{directory} has no *.safetensors files; download the weights, or pass "
                              "config.json alone to estimate from the architecture",
                              key="error.safetensors.no_files", fields={"directory": directory})
        return files
    names = sorted(set(weight_map.values()))
    if any(Path(n).is_absolute() or ".." in Path(n).parts for n in names):
        raise ConfigError(f"{index} names shards outside {directory}; refusing to follow them",
                          key="error.safetensors.shards_outside", fields={"index": index, "directory": directory})
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        shown = ", ".join(missing[:5])
        more = Text("fix.safetensors.and_more", count=len(missing) - 5) if len(missing) > 5 else ""
        raise ConfigError(f"{index.name} lists {len(names)} shards but {len(missing)} are missing from "
                          f"{directory}: {shown}{more}; download them (huggingface-cli download <repo> --include "
                          "'*.safetensors'), or pass config.json alone to estimate from the architecture",
                          key="error.safetensors.shards_missing",
                          fields={"index_name": index.name, "count": len(names), "missing": len(missing),
                                  "directory": directory, "shown": shown, "more": more})
    return [directory / n for n in names]


def _merge_tensors(headers: Iterable[SafetensorsHeader]) -> dict[str, TensorInfo]:
    tensors: dict[str, TensorInfo] = {}
    owner: dict[str, str] = {}
    for header in headers:
        for name, info in header.tensors.items():
            if name in tensors:
                raise ConfigError(f"tensor {name!r} is in both {owner[name]} and {header.path}; remove the "
                                  "duplicate file (e.g. consolidated.safetensors next to HF shards)",
                                  key="error.safetensors.duplicate_tensor",
                                  fields={"name": name, "first": owner[name], "second": header.path})
            tensors[name], owner[name] = info, header.path
    return tensors
