"""GGUF headers: architecture, metadata and tensor infos of a llama.cpp model file, never the weights.

GGUF (ggml docs/gguf.md) is read through the optional ``gguf`` package, which memory-maps the file and
parses the key/value metadata and tensor infos; tensor data is never touched. GGUF stores shapes innermost
first (``ne[0]``); they are reversed here to row-major, so ``token_embd.weight`` reads ``(vocab, hidden)``
like HF's embedding and like ``weights_file`` reports safetensors shapes.

``gguf_to_hf_config`` turns the header into an HF config.json dict, so the usual per-``model_type``
adapter (``hf``) describes the architecture.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from suanli.errors import ConfigError, Unavailable
from suanli.spec.weights_file import TensorInfo, TensorTable

Scalar = str | int | float | bool
MetadataValue = Scalar | tuple[Scalar, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class GgufFile(TensorTable):
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
        raise Unavailable("reading .gguf needs the gguf package: pip install gguf (a dependency of suanli: "
                          "reinstall it)", key="error.gguf.package_missing") from None
    return gguf


def read_gguf(path: str | Path) -> GgufFile:
    """Read a GGUF file's metadata and tensor infos through the ``gguf`` package (optional extra)."""
    gguf = _import_gguf()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} is not a file", key="error.gguf.not_file", fields={"path": path})
    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, IndexError, KeyError, TypeError, OSError, struct.error) as err:
        raise ConfigError(f"{path} is not a readable GGUF file ({err}); it is truncated or not GGUF",
                          key="error.gguf.unreadable", fields={"path": path, "reason": err}) from err
    metadata = {key: value for key, field in reader.fields.items()
                if not key.startswith("GGUF.") and (value := _field_value(gguf, field)) is not None}
    architecture = metadata.get("general.architecture")
    if not isinstance(architecture, str):
        raise ConfigError(f"{path} has no general.architecture string; it is not a model GGUF",
                          key="error.gguf.no_architecture", fields={"path": path})
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
_RENAMED = {"qwen3moe": {"num_local_experts": "num_experts"}}  # Qwen3-MoE's config names the count so


def gguf_to_hf_config(g: GgufFile) -> dict[str, Any]:
    """An HF-style config.json dict built from a GGUF header, for the supported architectures.

    vocab_size is the row count of token_embd.weight (else the tokenizer's token count);
    tie_word_embeddings is true when the file has no output.weight. Leaves out rope scaling.
    """
    arch = g.architecture
    if arch not in _MODEL_TYPES:
        raise ConfigError(f"{g.path}: GGUF architecture {arch!r} has no config adapter; supported: "
                          f"{', '.join(sorted(_MODEL_TYPES))}", key="error.gguf.unsupported_architecture",
                          fields={"path": g.path, "arch": arch, "supported": ", ".join(sorted(_MODEL_TYPES))})
    config: dict[str, Any] = {"model_type": _MODEL_TYPES[arch]}
    for hf_key, gguf_key in _HF_FROM_GGUF:
        value = g.metadata.get(f"{arch}.{gguf_key}")
        if value is not None:
            config[_RENAMED.get(arch, {}).get(hf_key, hf_key)] = _one_value(g, f"{arch}.{gguf_key}", value)
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        keys = ", ".join(f"{arch}.{dict(_HF_FROM_GGUF)[k]}" for k in missing)
        raise ConfigError(f"{g.path} lacks {keys} needed for {', '.join(missing)}; the file is incomplete",
                          key="error.gguf.keys_missing",
                          fields={"path": g.path, "keys": keys, "names": ", ".join(missing)})
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
    raise ConfigError(f"{g.path}: {key} varies per layer ({value[:8]}...); an HF config holds one value",
                      key="error.gguf.per_layer_value", fields={"path": g.path, "key": key, "values": value[:8]})


def _vocab_size(g: GgufFile) -> int:
    embedding = g.tensors.get("token_embd.weight")
    if embedding is not None and len(embedding.shape) == 2:
        return embedding.shape[0]
    if g.token_count:
        return g.token_count
    raise ConfigError(f"{g.path} has neither token_embd.weight nor tokenizer.ggml.tokens; vocab_size unknown",
                      key="error.gguf.no_vocab", fields={"path": g.path})
