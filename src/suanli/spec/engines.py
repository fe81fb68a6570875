"""Serving engines, as far as memory is concerned: how each sizes its KV cache, with its default settings.

An engine turns a GPU's memory into a KV-cache pool by one of six rules (``KvBudget``)::

    TOTAL_FRACTION   vLLM      pool = gpu_memory_utilization × total − weights − profiled activations − non-torch
    STATIC_FRACTION  SGLang    pool = mem_fraction_static × free-at-start − weights
    FREE_FRACTION    TRT-LLM   pool = free_gpu_memory_fraction × (free after weights and activations)
    CONTEXT          llama.cpp pool = n_ctx tokens (fitted to free memory), for the layers on the GPU
    FREE_MEMORY      HF        no pool: each sequence holds prompt + max_new_tokens contiguously
    FREE_RESERVE     TGI v3    pool = free after weights and the warm-up prefill − (1 − fraction) × total

The presets are data (``catalog/engines.toml``), every default with its source; the arithmetic is in
``suanli.core.inference_memory``. ``FrameworkOverheads`` holds the memory no engine setting controls (CUDA
context, cuBLAS workspace, NCCL buffers, CUDA-graph pool), as named assumptions with their evidence.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType
from typing import Any

from suanli.errors import NotFound, SpecError, close_matches, require_positive, suggest
from suanli.spec.hardware import entry_problem
from suanli.spec.model import UNBOUNDED_CONTEXT
from suanli.units import GiB, MiB


class KvBudget(Enum):
    """How an engine decides the size of its KV-cache pool (see the module docstring)."""

    TOTAL_FRACTION = "total-fraction"
    STATIC_FRACTION = "static-fraction"
    FREE_FRACTION = "free-fraction"
    CONTEXT = "context"
    FREE_MEMORY = "free-memory"
    FREE_RESERVE = "free-reserve"


class MlaCache(Enum):
    """What an engine caches for multi-head latent attention (DeepSeek-V2/V3).

    LATENT: the compressed ``kv_lora_rank`` latent plus the shared ``qk_rope_head_dim`` RoPE key, one vector per
    token per layer, the same on every TP rank (vLLM, SGLang, TRT-LLM, llama.cpp with MLA).
    DECOMPRESSED: per-head keys (``qk_nope + qk_rope``) and values (``v_head_dim``) after the up-projection, as
    transformers' DynamicCache stores them (and llama.cpp did before MLA support): 57× larger for DeepSeek-V3.
    """

    LATENT = "latent"
    DECOMPRESSED = "decompressed"


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticFractionRule:
    """SGLang's default ``mem_fraction_static`` (ServerArgs._handle_gpu_memory_settings, sglang PR #10975).

    From the GPU's memory (MiB, as nvidia-smi reports it) pick ``chunked_prefill_size`` and ``cuda_graph_max_bs``
    from ``buckets`` (below_mib, chunk, graph batch at tp < 4, graph batch at tp ≥ 4), then::

        reserve_mib = base + max(chunk, min_prefill_tokens) × mib_per_prefill_token
                      + graph_bs × mib_per_graph_batch + tp × mib_per_tp_rank
        reserve_mib = max(reserve_mib, floor_mib)            if gpu_mib > floor_above_mib
        mem_fraction_static = round((gpu_mib − reserve_mib) / gpu_mib, 3)
    """

    base_mib: float
    mib_per_prefill_token: float
    min_prefill_tokens: int
    mib_per_graph_batch: float
    mib_per_tp_rank: float
    floor_mib: float
    floor_above_mib: float
    buckets: tuple[tuple[float, int, int, int], ...]

    def settings(self, gpu_mib: float, tp: int) -> tuple[int, int]:
        """(chunked_prefill_size, cuda_graph_max_bs) for a GPU of ``gpu_mib`` MiB at this tp."""
        for below, chunk, graph_small, graph_large in self.buckets:
            if gpu_mib < below:
                return chunk, graph_small if tp < 4 else graph_large
        raise SpecError(f"no SGLang bucket covers {gpu_mib:.0f} MiB; the last bucket must be below inf",
                        key="error.engines.no_bucket", fields={"mib": gpu_mib})

    def fraction(self, gpu_mib: float, tp: int) -> float:
        chunk, graph_bs = self.settings(gpu_mib, tp)
        reserve = (self.base_mib + max(chunk, self.min_prefill_tokens) * self.mib_per_prefill_token
                   + graph_bs * self.mib_per_graph_batch + tp * self.mib_per_tp_rank)
        if gpu_mib > self.floor_above_mib:
            reserve = max(reserve, self.floor_mib)
        return round((gpu_mib - reserve) / gpu_mib, 3)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewTokenReserve:
    """SGLang's admission reserve for the running requests' future tokens: ``init_ratio`` × each one's remaining
    output (at most ``clip_max_new_tokens``), decaying toward ``init_ratio`` × ``min_ratio_factor`` over
    ``decay_steps`` decode steps and reset after a retraction (engines.toml ``[engine.new_token_reserve]``)."""

    init_ratio: float
    min_ratio_factor: float
    decay_steps: int
    clip_max_new_tokens: int

    def __post_init__(self) -> None:
        for name in ("init_ratio", "min_ratio_factor", "decay_steps", "clip_max_new_tokens"):
            require_positive(f"new_token_reserve.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True, kw_only=True)
class EnginePreset:
    """One engine's memory-relevant defaults. ``memory_fraction`` is gpu_memory_utilization (vLLM),
    mem_fraction_static (SGLang; None = ``static_fraction`` heuristic) or free_gpu_memory_fraction (TRT-LLM)."""

    key: str
    name: str
    version: str
    aliases: tuple[str, ...] = ()
    kv_budget: KvBudget
    memory_fraction: float | None = None
    static_fraction: StaticFractionRule | None = None
    block_size: int = 1  # tokens per KV block / page; 1 = token-level
    max_num_batched_tokens: int | None = None  # the prefill chunk the engine profiles; None = no chunking (HF)
    max_num_seqs: int | None = None  # running sequences; None = whatever batch is passed (HF)
    large_gpu_min_bytes: float | None = None  # vLLM: other batch defaults on GPUs at least this large...
    large_gpu_excluded: tuple[str, ...] = ()  # ...whose catalog key does not start with one of these
    large_gpu_max_num_batched_tokens: int | None = None
    large_gpu_max_num_seqs: int | None = None
    sampler_bytes_per_logit: float  # live bytes per (sampled row × vocab) element while sampling
    cuda_graphs: bool
    counts_cuda_graphs: bool = False  # the KV budget subtracts the CUDA-graph pool
    context_tokens: int | None = None  # llama.cpp n_ctx (0 = the model's trained context)
    n_gpu_layers: int | None = None  # llama.cpp -ngl; None = every layer and the output layer
    fit_margin_bytes: float = 0.0  # llama.cpp --fit leaves this much free per device
    kv_dtype: str = "auto"  # "auto" = the model's dtype
    mla_cache: MlaCache = MlaCache.LATENT
    runs_on: tuple[str, ...] = ()  # platforms ("nvidia-gpu", "google-tpu", ...: Accelerator.platform) it runs on
    nvls_communicators: int = 0  # NCCL communicators per TP group that set up NVLink SHARP buffers (0: NVLS off)
    prefill_peak_seconds: float | None = None  # TGI: prefill budget = tokens this many seconds of f16 peak compute
    max_running_requests: int | None = None  # SGLang's request pool (its max_num_seqs is the CUDA-graph batch)
    max_prefill_tokens: int | None = None  # SGLang: tokens one prefill batch may take (beside chunked_prefill_size)
    new_token_reserve: NewTokenReserve | None = None  # SGLang's admission reserve (simulator)
    moe_chunk_tokens: int | None = None  # vLLM's fused MoE runs at most this many tokens at once (None: all)
    # chunked prefill off: the step budget and profile are max(max_model_len, this) tokens (None: not the engine's way)
    whole_prompt_min_tokens: int | None = None
    unstated_context_tokens: int | None = None  # max_model_len for a config that states no length (None: unbounded)
    checks_pool_at_start: bool = False  # refuses to start when the KV pool cannot hold one max_model_len request
    # the user's knobs that change more than a default (``EngineKnobs.apply``):
    max_model_len: int | None = None  # --max-model-len: the longest request the server takes; None: the model's
    chunked_prefill: bool = True  # False (vLLM --no-enable-chunked-prefill): a prompt is prefilled whole, in one step
    sources: Mapping[str, str] = field(repr=False)
    notes: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", self.key):
            raise SpecError(f"engine key {self.key!r} must use lowercase letters, digits, '.', '+' and '-'",
                            key="error.engines.key_characters", fields={"key": self.key})
        require_positive(f"{self.key}: block_size", self.block_size)
        for name in ("max_num_batched_tokens", "max_num_seqs", "n_gpu_layers", "moe_chunk_tokens",
                     "whole_prompt_min_tokens", "unstated_context_tokens"):
            if getattr(self, name) is not None:
                require_positive(f"{self.key}: {name}", getattr(self, name))
        require_positive(f"{self.key}: sampler_bytes_per_logit", self.sampler_bytes_per_logit)
        if self.memory_fraction is not None and not 0 < self.memory_fraction <= 1:
            raise SpecError(f"{self.key}: memory fraction {self.memory_fraction} must be in (0, 1]; "
                            "0.9 keeps a tenth of the GPU for everything else", key="error.engines.memory_fraction",
                            fields={"key": self.key, "fraction": self.memory_fraction})
        needs_fraction = self.kv_budget in (KvBudget.TOTAL_FRACTION, KvBudget.FREE_FRACTION, KvBudget.FREE_RESERVE)
        if needs_fraction and self.memory_fraction is None:
            raise SpecError(f"{self.key}: a {self.kv_budget.value} budget needs memory_fraction",
                            key="error.engines.budget_fraction",
                            fields={"key": self.key, "budget": self.kv_budget.value})
        if self.kv_budget is KvBudget.STATIC_FRACTION and (self.memory_fraction or self.static_fraction) is None:
            raise SpecError(f"{self.key}: a static-fraction budget needs memory_fraction or static_fraction",
                            key="error.engines.static_fraction", fields={"key": self.key})
        if missing := sorted(set(_sourced_fields(self)) - set(self.sources)):
            raise SpecError(f"engine {self.key}: no source for {', '.join(missing)}; add them under "
                            f"[engine.sources] citing the docs or code that sets each default",
                            key="error.engines.no_source", fields={"key": self.key, "missing": ", ".join(missing)})

    def batch_defaults(self, accelerator_key: str, memory_bytes: float) -> tuple[int | None, int | None]:
        """(max_num_batched_tokens, max_num_seqs) on this accelerator: vLLM uses larger defaults on GPUs of
        at least ``large_gpu_min_bytes`` unless they are A100s (vllm/engine/arg_utils.py)."""
        large = (self.large_gpu_min_bytes is not None and memory_bytes >= self.large_gpu_min_bytes
                 and not accelerator_key.startswith(self.large_gpu_excluded))
        if large:
            return (self.large_gpu_max_num_batched_tokens or self.max_num_batched_tokens,
                    self.large_gpu_max_num_seqs or self.max_num_seqs)
        return self.max_num_batched_tokens, self.max_num_seqs

    def model_len(self, context: int) -> int:
        """The longest request (prompt + output) the server takes: ``--max-model-len``, else the model's
        ``context`` (vLLM derives its default max_model_len from the config; a config that states no length,
        ``UNBOUNDED_CONTEXT``, gets ``unstated_context_tokens``)."""
        if self.max_model_len is not None:
            return self.max_model_len
        if context == UNBOUNDED_CONTEXT and self.unstated_context_tokens is not None:
            return self.unstated_context_tokens
        return context

    def whole_prompt_tokens(self, context: int) -> int | None:
        """With chunked prefill off, the tokens of one step and of the memory profile: max(max_model_len,
        ``whole_prompt_min_tokens``) (vLLM); None when chunked prefill is on or the engine has no such rule."""
        if self.chunked_prefill or self.whole_prompt_min_tokens is None:
            return None
        return max(self.model_len(context), self.whole_prompt_min_tokens)

    def memory_fraction_for(self, gpu_memory_bytes: float, tp: int) -> float:
        """The fraction this engine uses on a GPU of this size (SGLang's depends on it), 1.0 when it has none."""
        if self.memory_fraction is not None:
            return self.memory_fraction
        if self.static_fraction is not None:
            return self.static_fraction.fraction(gpu_memory_bytes / MiB, tp)
        return 1.0


def _sourced_fields(preset: EnginePreset) -> list[str]:
    """The defaults a preset states, each of which needs a source."""
    names = ["kv_budget", "block_size", "max_num_batched_tokens", "max_num_seqs", "sampler_bytes_per_logit",
             "cuda_graphs", "kv_dtype", "mla_cache"]
    optional = {"memory_fraction": preset.memory_fraction, "static_fraction": preset.static_fraction,
                "context_tokens": preset.context_tokens, "large_gpu_min_bytes": preset.large_gpu_min_bytes,
                "fit_margin_bytes": preset.fit_margin_bytes or None, "runs_on": preset.runs_on or None,
                "nvls_communicators": preset.nvls_communicators or None,
                "prefill_peak_seconds": preset.prefill_peak_seconds,
                "max_running_requests": preset.max_running_requests, "max_prefill_tokens": preset.max_prefill_tokens,
                "new_token_reserve": preset.new_token_reserve, "moe_chunk_tokens": preset.moe_chunk_tokens,
                "whole_prompt_min_tokens": preset.whole_prompt_min_tokens,
                "unstated_context_tokens": preset.unstated_context_tokens,
                "checks_pool_at_start": preset.checks_pool_at_start or None}
    return names + [name for name, value in optional.items() if value is not None]


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameworkOverheads:
    """GPU memory that no engine knob controls, per GPU, as named assumptions (sources in engines.toml)."""

    cuda_reserved_bytes: float  # total the driver reports (nvidia-smi) minus what cudaMemGetInfo reports
    cuda_context_bytes: float  # CUDA context + PyTorch/CUDA runtime state before any tensor is allocated
    cublas_workspace_bytes: float  # PyTorch's cuBLAS/cuBLASLt workspace (32 MiB on Hopper)
    non_torch_bytes: float  # memory outside PyTorch's allocator that a forward pass adds (single GPU)
    nccl_bytes: float  # NCCL / custom all-reduce buffers added when tp > 1
    cuda_graph_bytes: float  # the CUDA-graph memory pool of a serving engine that captures decode graphs
    nvls_per_rank_bytes: float = 0.0  # NCCL NVLS multicast buffer per rank of the communicator (nvlsPerRankSize)
    nvls_interconnects: tuple[str, ...] = ()  # scale-up fabrics with NVLink SHARP (NVSwitch gen 3+)
    nvls_min_ranks: int = 3  # NCCL enables NVLS only above two GPUs
    sources: Mapping[str, str] = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("cuda_reserved_bytes", "cuda_context_bytes", "cublas_workspace_bytes", "non_torch_bytes",
                     "nccl_bytes", "cuda_graph_bytes", "nvls_per_rank_bytes"):
            if getattr(self, name) < 0:
                raise SpecError(f"overhead {name} must be zero or positive, got {getattr(self, name)}",
                                key="error.engines.overhead_negative",
                                fields={"name": name, "value": getattr(self, name)})
            if name.removesuffix("_bytes") not in self.sources:
                raise SpecError(f"overhead {name} has no source; cite the log or code it comes from",
                                key="error.engines.overhead_source", fields={"name": name})


# ---- the catalog ------------------------------------------------------------------------------------------

_UNITS = {"_gib": GiB, "_mib": MiB}


def _to_bytes(raw: dict[str, Any]) -> dict[str, Any]:
    """``*_gib`` / ``*_mib`` keys become ``*_bytes``."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        suffix = next((s for s in _UNITS if name.endswith(s)), None)
        out[name.removesuffix(suffix) + "_bytes" if suffix else name] = value * _UNITS[suffix] if suffix else value
    return out


def _engine(raw: dict[str, Any]) -> EnginePreset:
    r = _to_bytes(raw)
    r["kv_budget"] = KvBudget(r["kv_budget"])
    r["mla_cache"] = MlaCache(r.get("mla_cache", "latent"))
    r["aliases"] = tuple(r.get("aliases", ()))
    r["notes"] = tuple(r.get("notes", ()))
    r["runs_on"] = tuple(r.get("runs_on", ()))
    r["large_gpu_excluded"] = tuple(r.get("large_gpu_excluded", ()))
    r["sources"] = MappingProxyType(dict(r.get("sources", {})))
    if "static_fraction" in r:
        rule = dict(r["static_fraction"])  # SGLang works in MiB: kept as it is
        rule["buckets"] = tuple((float(b), int(c), int(s), int(g)) for b, c, s, g in rule["buckets"])
        r["static_fraction"] = StaticFractionRule(**rule)
    if "new_token_reserve" in r:
        r["new_token_reserve"] = NewTokenReserve(**r["new_token_reserve"])
    return EnginePreset(**r)


def _read() -> dict[str, Any]:
    from importlib import resources

    text = resources.files("suanli").joinpath("catalog", "engines.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _build_engine(raw: dict[str, Any]) -> EnginePreset:
    try:
        return _engine(raw)
    except (KeyError, TypeError, ValueError) as bad:
        problem = entry_problem(bad)
        raise SpecError(f"engines.toml, engine {raw.get('key', '?')!r}: {problem}; the file's header lists "
                        "the fields and their units", key="error.engines.catalog_entry",
                        fields={"entry": raw.get("key", "?"), "problem": problem}) from None


@functools.cache
def load_engines() -> tuple[EnginePreset, ...]:
    """Every engine preset, in catalog order (read once per process)."""
    engines = tuple(_build_engine(raw) for raw in _read().get("engine", []))
    names = [name for e in engines for name in (e.key, *e.aliases)]
    if duplicate := sorted({n for n in names if names.count(n) > 1}):
        raise SpecError(f"engines.toml: names used twice: {', '.join(duplicate)}", key="error.engines.name_twice",
                        fields={"names": ", ".join(duplicate)})
    return engines


@functools.cache
def framework_overheads() -> FrameworkOverheads:
    """The default framework overheads (engines.toml ``[overheads]``)."""
    raw = _to_bytes(dict(_read()["overheads"]))
    raw["sources"] = MappingProxyType(dict(raw.get("sources", {})))
    raw["nvls_interconnects"] = tuple(raw.get("nvls_interconnects", ()))
    return FrameworkOverheads(**raw)


def get_engine(name: str) -> EnginePreset:
    """The preset with this key or alias, case-insensitive: ``vllm``, ``sglang``, ``trtllm``, ``llamacpp``, ``hf``."""
    wanted = re.sub(r"[\s_]+", "-", name.strip().lower())
    index = {n: e for e in load_engines() for n in (e.key, *e.aliases)}
    if wanted not in index:
        raise NotFound(f"unknown engine {name!r}{suggest(wanted, index)}; known: {', '.join(index)}",
                       key="error.engines.unknown",
                       fields={"name": name, "suggestions": close_matches(wanted, index), "known": ", ".join(index)})
    return index[wanted]


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineKnobs:
    """Serving-engine settings under their own names (None: the engine's default, as in ``engines.toml``).
    vLLM: gpu_memory_utilization, max_num_seqs, max_num_batched_tokens, block_size, enable_prefix_caching,
    enable_chunked_prefill, max_model_len;
    SGLang: mem_fraction_static, chunked_prefill_size (and max_running_requests as max_num_seqs)."""

    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    block_size: int | None = None
    enable_prefix_caching: bool | None = None
    enable_chunked_prefill: bool | None = None  # False: a prompt is prefilled whole, in one step (vLLM V0 with MLA)
    enforce_eager: bool = False
    max_model_len: int | None = None  # vLLM --max-model-len (SGLang --context-length): the longest request taken

    def apply(self, engine: EnginePreset) -> EnginePreset:
        """The preset with these knobs set (the large-GPU defaults no longer apply to a knob given)."""
        changes: dict[str, object] = {}
        if self.gpu_memory_utilization is not None:
            if not 0 < self.gpu_memory_utilization <= 1:
                raise SpecError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}",
                                key="error.engines.gpu_memory_utilization",
                                fields={"value": self.gpu_memory_utilization})
            changes["memory_fraction"] = self.gpu_memory_utilization
            changes["sources"] = MappingProxyType({**engine.sources, "memory_fraction": "set by the user"})
        if self.max_num_seqs is not None:
            require_positive("max_num_seqs", self.max_num_seqs)
            changes.update(max_num_seqs=self.max_num_seqs, large_gpu_max_num_seqs=None)
        if self.max_num_batched_tokens is not None:
            require_positive("max_num_batched_tokens", self.max_num_batched_tokens)
            changes.update(max_num_batched_tokens=self.max_num_batched_tokens, large_gpu_max_num_batched_tokens=None)
        if self.block_size is not None:
            require_positive("block_size", self.block_size)
            changes["block_size"] = self.block_size
        if self.enforce_eager:
            changes["cuda_graphs"] = False
        if self.max_model_len is not None:
            require_positive("max_model_len", self.max_model_len)
            changes["max_model_len"] = self.max_model_len
            if engine.kv_budget is KvBudget.CONTEXT:  # llama.cpp allocates its KV cache for -c (n_ctx) tokens
                changes["context_tokens"] = self.max_model_len
        if self.enable_chunked_prefill is False:
            changes["chunked_prefill"] = False
            if self.max_num_batched_tokens is None and engine.whole_prompt_min_tokens is not None:
                # vLLM's step budget is then max(max_model_len, 2048), resolved with the model (engine_setting)
                changes.update(max_num_batched_tokens=None, large_gpu_max_num_batched_tokens=None)
        return replace(engine, **changes) if changes else engine  # type: ignore[arg-type]
