"""Weight-file headers: tensor names, dtypes and shapes from safetensors and GGUF files, never the weights.

safetensors (huggingface/safetensors, README "Format"): an 8-byte little-endian u64 ``N``, then ``N``
bytes of UTF-8 JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``,
then the data buffer; offsets count from the start of that buffer. Read here with the standard library.

GGUF (ggml docs/gguf.md) is read through the optional ``gguf`` package, which memory-maps the file and
parses the key/value metadata and tensor infos; tensor data is never touched.

Shapes are row-major (PyTorch order, outermost first) for both formats; GGUF stores them innermost first
(``ne[0]``) and is reversed here, so ``token_embd.weight`` reads ``(vocab, hidden)`` like HF's embedding.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, BinaryIO

from suanli.errors import ConfigError, Unavailable
from suanli.units import MiB

HEADER_CAP_BYTES = 100 * MiB
# Bits per element of each safetensors dtype code (safetensors Dtype::bitsize, 0.6).
SAFETENSORS_DTYPE_BITS: Mapping[str, int] = MappingProxyType({
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "C64": 64, "F64": 64, "I64": 64, "U64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
})
_LFS_POINTER = b"version https://git-lfs"

Scalar = str | int | float | bool
MetadataValue = Scalar | tuple[Scalar, ...]


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


class _TensorTable:
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
class SafetensorsHeader(_TensorTable):
    path: str
    header_bytes: int
    file_bytes: int
    tensors: Mapping[str, TensorInfo]
    metadata: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredWeights(_TensorTable):
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
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from err
    entries = _header_json(path, raw)
    metadata = entries.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise ConfigError(f"{path}: __metadata__ must be an object of strings, got {type(metadata).__name__}")
    data_bytes = file_bytes - 8 - header_len
    tensors = {name: _tensor_info(path, name, entry, data_bytes) for name, entry in entries.items()}
    return SafetensorsHeader(path=str(path), header_bytes=header_len, file_bytes=file_bytes,
                             tensors=MappingProxyType(tensors),
                             metadata=MappingProxyType({str(k): str(v) for k, v in metadata.items()}))


def _header_length(path: Path, f: BinaryIO, file_bytes: int) -> int:
    first = f.read(8)
    if first == _LFS_POINTER[:8] and f.read(len(_LFS_POINTER) - 8) == _LFS_POINTER[8:]:
        raise ConfigError(f"{path} is a Git LFS pointer, not the weights; run `git lfs pull` in its repo")
    if len(first) < 8:
        raise ConfigError(f"{path} has {file_bytes} bytes, fewer than the 8-byte header length; "
                          "the file is truncated or not safetensors")
    (header_len,) = struct.unpack("<Q", first)
    if header_len > HEADER_CAP_BYTES:
        raise ConfigError(f"header of {path} claims {header_len} bytes, over the {HEADER_CAP_BYTES} byte "
                          "(100 MiB) limit; the file is corrupt or not safetensors")
    if header_len > file_bytes - 8:
        raise ConfigError(f"header of {path} claims {header_len} bytes, file has {file_bytes}; "
                          "the file is truncated or not safetensors")
    return int(header_len)


def _header_json(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        entries = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"header of {path} is not valid JSON ({err}); the file is corrupt or not "
                          "safetensors") from err
    if not isinstance(entries, dict):
        raise ConfigError(f"header of {path} is a JSON {type(entries).__name__}, not an object of tensors")
    return entries


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor_info(path: Path, name: str, entry: object, data_bytes: int) -> TensorInfo:
    where = f"{path}: tensor {name!r}"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise ConfigError(f"{where} needs dtype, shape and data_offsets, got {entry!r:.120}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in SAFETENSORS_DTYPE_BITS:
        raise ConfigError(f"{where} has unknown dtype {dtype!r}; known: {', '.join(SAFETENSORS_DTYPE_BITS)}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise ConfigError(f"{where} has shape {shape!r}; expected a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)
            and offsets[0] <= offsets[1]):
        raise ConfigError(f"{where} has data_offsets {offsets!r}; expected [begin, end] with begin <= end")
    bits = math.prod(shape) * SAFETENSORS_DTYPE_BITS[dtype]
    span = offsets[1] - offsets[0]
    if bits % 8 or span != bits // 8:
        raise ConfigError(f"{where} is {dtype}{shape}, {bits / 8:g} bytes, but data_offsets {offsets} span "
                          f"{span}; the header is corrupt")
    if offsets[1] > data_bytes:
        raise ConfigError(f"{where} ends at byte {offsets[1]} of a data buffer of {data_bytes} bytes; the "
                          "file is truncated, download it again")
    return TensorInfo(name=name, dtype=dtype, shape=tuple(shape), nbytes=span)


def read_safetensors_dir(directory: str | Path) -> StoredWeights:
    """All *.safetensors in ``directory``, or with model.safetensors.index.json the shards it names."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory")
    index = _index_file(directory)
    weight_map = _weight_map(index) if index else {}
    files = _shards(directory, index, weight_map)
    headers = [read_safetensors_header(f) for f in files]
    tensors = _merge_tensors(headers)
    for name, shard in weight_map.items():
        if name not in tensors:
            raise ConfigError(f"{index} places {name!r} in {shard}, whose header has no such tensor; the "
                              "index and shards come from different revisions, download them again")
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
        raise ConfigError(f"{directory} has {len(found)} safetensors indexes ({names}); point at one model")
    return found[0] if found else None


def _weight_map(index: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as err:
        raise ConfigError(f"{index} is not a readable safetensors index ({err})") from err
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ConfigError(f"{index} has no weight_map object of tensor name -> shard file")
    return weight_map


def _shards(directory: Path, index: Path | None, weight_map: Mapping[str, str]) -> list[Path]:
    if index is None:
        files = sorted(directory.glob("*.safetensors"))
        if not files:
            raise ConfigError(f"{directory} has no *.safetensors files; download the weights, or pass "
                              "config.json alone to estimate from the architecture")
        return files
    names = sorted(set(weight_map.values()))
    if any(Path(n).is_absolute() or ".." in Path(n).parts for n in names):
        raise ConfigError(f"{index} names shards outside {directory}; refusing to follow them")
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ConfigError(f"{index.name} lists {len(names)} shards but {len(missing)} are missing from "
                          f"{directory}: {shown}; download them (huggingface-cli download <repo> --include "
                          "'*.safetensors')")
    return [directory / n for n in names]


def _merge_tensors(headers: Iterable[SafetensorsHeader]) -> dict[str, TensorInfo]:
    tensors: dict[str, TensorInfo] = {}
    owner: dict[str, str] = {}
    for header in headers:
        for name, info in header.tensors.items():
            if name in tensors:
                raise ConfigError(f"tensor {name!r} is in both {owner[name]} and {header.path}; remove the "
                                  "duplicate file (e.g. consolidated.safetensors next to HF shards)")
            tensors[name], owner[name] = info, header.path
    return tensors


# ---- GGUF ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GgufFile(_TensorTable):
    """A GGUF file's header: scalar metadata and tensor infos (types are ggml names: Q4_K, F16, ...)."""

    path: str
    architecture: str
    name: str | None
    file_type: str | None  # llama.cpp file type from general.file_type: "Q4_K_M", "F16", ...
    token_count: int | None  # length of tokenizer.ggml.tokens
    tensors: Mapping[str, TensorInfo]
    metadata: Mapping[str, MetadataValue]  # scalars, and numeric arrays of up to _ARRAY_LIMIT items

    @property
    def bits_per_weight(self) -> float:
        """8 × total tensor bytes / total parameters (llama.cpp's "BPW")."""
        return 8 * self.total_bytes / self.total_params if self.total_params else 0.0


_ARRAY_LIMIT = 1024


def _import_gguf() -> ModuleType:
    try:
        import gguf
    except ImportError:
        raise Unavailable("reading .gguf needs the gguf package: pip install 'suanli[io]'") from None
    return gguf


def read_gguf(path: str | Path) -> GgufFile:
    """Read a GGUF file's metadata and tensor infos through the ``gguf`` package (optional extra)."""
    gguf = _import_gguf()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} is not a file")
    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, IndexError, KeyError, TypeError, OSError, struct.error) as err:
        raise ConfigError(f"{path} is not a readable GGUF file ({err}); it is truncated or not GGUF") from err
    metadata = {key: value for key, field in reader.fields.items()
                if not key.startswith("GGUF.") and (value := _field_value(gguf, field)) is not None}
    architecture = metadata.get("general.architecture")
    if not isinstance(architecture, str):
        raise ConfigError(f"{path} has no general.architecture string; it is not a model GGUF")
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    return GgufFile(path=str(path), architecture=architecture, name=_opt_str(metadata.get("general.name")),
                    file_type=_file_type_name(gguf, metadata.get("general.file_type")),
                    token_count=len(tokens.data) if tokens is not None else None,
                    tensors=MappingProxyType({t.name: _gguf_tensor(t) for t in reader.tensors}),
                    metadata=MappingProxyType(metadata))


def _gguf_tensor(t: Any) -> TensorInfo:
    return TensorInfo(name=str(t.name), dtype=t.tensor_type.name,
                      shape=tuple(int(d) for d in reversed(t.shape.tolist())), nbytes=int(t.n_bytes))


def _field_value(gguf: ModuleType, field: Any) -> MetadataValue | None:
    kinds = gguf.GGUFValueType
    if field.types[0] == kinds.ARRAY:  # keep short numeric arrays (per-layer values), skip token lists
        numeric = field.types[-1] not in (kinds.STRING, kinds.ARRAY)
        return tuple(field.contents()) if numeric and len(field.data) <= _ARRAY_LIMIT else None
    value = field.contents()
    return _shortest_float32(value) if field.types[0] == kinds.FLOAT32 else value


def _shortest_float32(value: float) -> float:
    """1e-05 rather than 9.999999747378752e-06: the shortest decimal that is the same float32."""
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", candidate))[0] == value:
            return candidate
    return value


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _file_type_name(gguf: ModuleType, value: object) -> str | None:
    if not isinstance(value, int):
        return None
    try:
        name: str = gguf.LlamaFileType(value).name
    except ValueError:
        return f"ftype {value}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


# ---- GGUF -> HF config -----------------------------------------------------------------------------------

# HF config key <- "<arch>." + GGUF key (llama.cpp gguf-py constants.Keys.LLM / Keys.Attention / Keys.Rope).
_HF_FROM_GGUF = (
    ("hidden_size", "embedding_length"), ("num_hidden_layers", "block_count"),
    ("intermediate_size", "feed_forward_length"), ("num_attention_heads", "attention.head_count"),
    ("num_key_value_heads", "attention.head_count_kv"), ("rms_norm_eps", "attention.layer_norm_rms_epsilon"),
    ("rope_theta", "rope.freq_base"), ("max_position_embeddings", "context_length"),
    ("head_dim", "attention.key_length"),
    ("num_local_experts", "expert_count"), ("num_experts_per_tok", "expert_used_count"),
    ("moe_intermediate_size", "expert_feed_forward_length"), ("sliding_window", "attention.sliding_window"),
    ("attn_logit_softcapping", "attn_logit_softcapping"),
    ("final_logit_softcapping", "final_logit_softcapping"),
)
# GGUF architecture -> HF model_type. Mistral and Mixtral convert to "llama" (Mixtral with experts).
_MODEL_TYPES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen3moe": "qwen3_moe",
                "gemma2": "gemma2", "gemma3": "gemma3_text"}
_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads")


def gguf_to_hf_config(g: GgufFile) -> dict[str, Any]:
    """An HF-style config.json dict built from a GGUF header, for the supported architectures.

    vocab_size is the row count of token_embd.weight (else the tokenizer's token count);
    tie_word_embeddings is true when the file has no output.weight. Leaves out rope scaling.
    """
    arch = g.architecture
    if arch not in _MODEL_TYPES:
        raise ConfigError(f"{g.path}: GGUF architecture {arch!r} has no config adapter; supported: "
                          f"{', '.join(sorted(_MODEL_TYPES))}")
    config: dict[str, Any] = {"model_type": _MODEL_TYPES[arch]}
    for hf_key, gguf_key in _HF_FROM_GGUF:
        value = g.metadata.get(f"{arch}.{gguf_key}")
        if value is not None:
            config[hf_key] = _one_value(g, f"{arch}.{gguf_key}", value)
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise ConfigError(f"{g.path} lacks {', '.join(f'{arch}.{dict(_HF_FROM_GGUF)[k]}' for k in missing)}"
                          f" needed for {', '.join(missing)}; the file is incomplete")
    config.setdefault("num_key_value_heads", config["num_attention_heads"])
    if arch == "llama" and config.get("num_local_experts", 0) > 1:
        config["model_type"] = "mixtral"
    config["vocab_size"] = _vocab_size(g)
    config["tie_word_embeddings"] = "output.weight" not in g.tensors
    return config


def _one_value(g: GgufFile, key: str, value: MetadataValue) -> Scalar:
    if not isinstance(value, tuple):
        return value
    if len(set(value)) == 1:
        return value[0]
    raise ConfigError(f"{g.path}: {key} varies per layer ({value[:8]}...); an HF config holds one value")


def _vocab_size(g: GgufFile) -> int:
    embedding = g.tensors.get("token_embd.weight")
    if embedding is not None and len(embedding.shape) == 2:
        return embedding.shape[0]
    if g.token_count:
        return g.token_count
    raise ConfigError(f"{g.path} has neither token_embd.weight nor tokenizer.ggml.tokens; vocab_size unknown")
