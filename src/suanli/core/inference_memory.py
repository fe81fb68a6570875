"""Per-GPU inference memory — weights, KV cache, activations, framework overhead — and what each engine's
KV-cache budget holds.

Weights: ``core/serving_weights.py`` (formats, TP/EP sharding, what a checkpoint leaves unquantized).

Activations. Inference keeps nothing for a backward pass, so the peak is one layer's widest live set over a
prefill chunk of T tokens, or the sampler's, whichever is larger::

    forward  = T × 2 B × (2·h + widest(layer))   widest: gated MLP 3·i/tp, MoE top_k·(3·i_e/tp + h),
                                                 attention (H + kv)·(d + d_v)/tp
    MoE: the fused-MoE buffers (M, top_k, 2·i_e/tp), (M·top_k, i_e/tp), (M, top_k, h) over M = min(T, chunk)
    tokens where the engine chunks its fused MoE (vLLM: VLLM_FUSED_MOE_CHUNK_SIZE, 32,768 since v0.6.0)
    sampler  = T × h × 2 B + rows × vocab × sampler_bytes_per_logit

Engines (``spec.engines``) turn what is left into a KV pool; see ``kv_budget_bytes``.

Hybrid and state-space models (Mamba-2, Jamba, Bamba, Nemotron-H). The per-request cache is the attention
layers' KV plus a fixed conv + SSM state per Mamba layer (``kv_cache.ssm_state_bytes``), independent of the
context length; ``kv_cache_bytes`` holds both and ``ssm_state_bytes`` the state part. vLLM's hybrid
allocator (v1 ``HybridKVCacheCoordinator``, ``MambaSpec``) takes both from one pool: a sequence holds its
attention pages plus one state slot per Mamba layer, so the pool's capacity in tokens is that of as many
``context``-long sequences as fit, each costing its attention KV plus its state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from suanli.core.engine_rules import compute_optimal_prefill_tokens, nvls_bytes
from suanli.core.kv_cache import (
    cached_tokens,
    kv_bytes_per_token,
    kv_bytes_per_token_per_layer,
    kv_cache_bytes,
    parse_kv_format,
    ssm_state_bytes,
)
from suanli.core.serving_weights import (
    WeightBytes as WeightBytes,
)
from suanli.core.serving_weights import (
    block_linears as block_linears,
)
from suanli.core.serving_weights import (
    checkpoint_weights_format as checkpoint_weights_format,
)
from suanli.core.serving_weights import (
    mixer_linears,
)
from suanli.core.serving_weights import (
    weight_bytes_per_gpu as weight_bytes_per_gpu,
)
from suanli.errors import require_positive
from suanli.spec.engines import (
    EnginePreset,
    FrameworkOverheads,
    KvBudget,
    framework_overheads,
    get_engine,
)
from suanli.spec.hardware import Accelerator
from suanli.spec.model import (
    Layer,
    ModelSpec,
    Moe,
)
from suanli.spec.precision import NumberFormat
from suanli.spec.serving import Deployment, StaticBatch

_ACT_BYTES = 2  # activations in bf16 / fp16


# ---- activations ------------------------------------------------------------------------------------------

def _widest_bytes(layer: Layer, h: int, tp: int, tokens: int, moe_chunk: int | None) -> float:
    """Bytes of a block's largest live intermediates over ``tokens`` tokens, per TP rank (module docstring). A MoE
    block's three fused-MoE buffers (gate/up, activation, per-expert outputs) hold at most ``moe_chunk`` tokens
    when the engine chunks its fused MoE (vLLM: VLLM_FUSED_MOE_CHUNK_SIZE)."""
    a, ffn = layer.attention, layer.ffn
    if a is not None:
        attention = (a.num_heads + a.num_kv_heads) * (a.head_dim + a.v_head_dim) / tp
    else:  # Mamba: the in_proj output (z, x, B, C, dt) is the widest live tensor
        attention = mixer_linears(layer.mixer, h)[0].out_features / tp if layer.mixer is not None else 0.0
    if ffn is None:
        return tokens * _ACT_BYTES * attention
    if isinstance(ffn, Moe):
        width = ffn.expert.intermediate_size * (3 if ffn.expert.gated else 2)
        moe_tokens = min(tokens, moe_chunk) if moe_chunk else tokens
        return max(tokens * attention, moe_tokens * ffn.top_k * (width / tp + h)) * _ACT_BYTES
    return tokens * _ACT_BYTES * max(attention, ffn.intermediate_size * (3 if ffn.gated else 2) / tp)


def activation_bytes(spec: ModelSpec, *, chunk_tokens: int, sampled_rows: int, tp: int = 1,
                     sampler_bytes_per_logit: float = 8.0, moe_chunk_tokens: int | None = None) -> float:
    """Peak activation workspace on one GPU for a prefill chunk of ``chunk_tokens`` tokens followed by sampling
    ``sampled_rows`` rows: max(forward, sampler), formulas in the module docstring; the MoE buffers over at most
    ``moe_chunk_tokens`` tokens."""
    require_positive("chunk_tokens", chunk_tokens)
    h = spec.hidden_size
    widest = max(_widest_bytes(layer, h, tp, chunk_tokens, moe_chunk_tokens) for layer, _ in spec.layer_groups())
    forward = chunk_tokens * _ACT_BYTES * 2 * h + widest
    sampler = chunk_tokens * h * _ACT_BYTES + sampled_rows * spec.vocab_size * sampler_bytes_per_logit
    return max(forward, sampler)


def llamacpp_compute_buffer_bytes(spec: ModelSpec, *, ubatch: int) -> float:
    """llama.cpp's GPU compute buffer with flash attention: the ubatch's fp32 logits and residual stream,
    n_ubatch × (vocab + 2·h) × 4 B (Llama-3.1-8B, n_ubatch 512: 266 MiB against 258.5 MiB logged).
    Without flash attention the n_ubatch × n_ctx × n_head fp32 scores can exceed this."""
    return ubatch * (spec.vocab_size + 2 * spec.hidden_size) * 4.0


# ---- engines: budgets and capacity ------------------------------------------------------------------------

def visible_memory_bytes(accelerator: Accelerator, overheads: FrameworkOverheads | None = None) -> float:
    """What cudaMemGetInfo reports as the GPU's total: the driver's total (nvidia-smi, where catalogued, else
    the DRAM size) less ``cuda_reserved`` (H100: 81,559 MiB → 79.15 GiB; 79.11–79.18 GiB observed)."""
    o = overheads or framework_overheads()
    if accelerator.kind == "cpu":  # the host's own memory: no CUDA driver reserves any of it
        return float(accelerator.memory_bytes)
    return (accelerator.driver_memory_bytes or accelerator.memory_bytes) - o.cuda_reserved_bytes


def _driver_total(accelerator: Accelerator) -> float:
    return float(accelerator.driver_memory_bytes or accelerator.memory_bytes)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSetting:
    """The settings an engine runs with on one accelerator and layout (its defaults, resolved)."""

    engine: EnginePreset
    memory_fraction: float
    chunk_tokens: int | None  # prefill chunk profiled / scheduled; None = the whole prompt batch
    max_num_seqs: int | None


def engine_setting(engine: EnginePreset, accelerator: Accelerator, *, tp: int = 1,
                   spec: ModelSpec | None = None) -> EngineSetting:
    """Resolve GPU-dependent defaults: vLLM's batch limits, SGLang's mem_fraction_static and chunk size, TGI's
    compute-sized prefill budget (with ``spec``; the preset's fallback without), and vLLM's whole-prompt step
    budget with chunked prefill off, max(max_model_len, 2048), which its memory profile also runs."""
    chunk, seqs = engine.batch_defaults(accelerator.key, accelerator.memory_bytes)
    rule = engine.static_fraction
    if rule is not None and engine.memory_fraction is None:
        chunk, seqs = rule.settings(_driver_total(accelerator) / 2**20, tp)
    if engine.prefill_peak_seconds is not None and spec is not None:
        chunk = compute_optimal_prefill_tokens(spec, accelerator, tp=tp, seconds=engine.prefill_peak_seconds) or chunk
    if chunk is None and spec is not None:
        chunk = engine.whole_prompt_tokens(spec.max_position_embeddings)
    return EngineSetting(engine=engine, memory_fraction=engine.memory_fraction_for(_driver_total(accelerator), tp),
                         chunk_tokens=chunk, max_num_seqs=seqs)


def overhead_parts(engine: EnginePreset, *, tp: int, overheads: FrameworkOverheads | None = None,
                   accelerator: Accelerator | None = None) -> dict[str, float]:
    """Framework memory outside weights, KV and activations on one GPU, by named assumption. vLLM's cuBLAS
    workspace sits inside its profiled activation peak; llama.cpp allocates no PyTorch workspace. On a CPU there is
    none of them: no CUDA context, cuBLAS workspace, NCCL or CUDA graphs (``suanli measure`` on the CPU counts
    the tensors alone and matches weights + KV + activations)."""
    if accelerator is not None and accelerator.kind == "cpu":
        return {}
    o = overheads or framework_overheads()
    parts = {"cuda_context": o.cuda_context_bytes}
    if engine.kv_budget is KvBudget.TOTAL_FRACTION:
        parts["non_torch"] = o.non_torch_bytes
    elif engine.kv_budget is not KvBudget.CONTEXT:
        parts["cublas_workspace"] = o.cublas_workspace_bytes
    if tp > 1:
        parts["nccl"] = o.nccl_bytes
    if nvls := nvls_bytes(engine, accelerator, tp=tp, overheads=o):
        parts["nccl_nvls"] = nvls
    if engine.cuda_graphs:
        parts["cuda_graphs"] = o.cuda_graph_bytes
    return parts


def profiled_activation_bytes(spec: ModelSpec, setting: EngineSetting, *, tp: int = 1, batch: int = 1,
                              prompt_tokens: int = 1) -> float:
    """The activation peak an engine plans for: its profile run (chunk, min(max_num_seqs, chunk) sampled rows);
    llama.cpp its compute buffer; HF the whole prompt batch with ``batch`` sampled rows."""
    engine = setting.engine
    if engine.kv_budget is KvBudget.CONTEXT:
        return llamacpp_compute_buffer_bytes(spec, ubatch=setting.chunk_tokens or 512)
    chunk = setting.chunk_tokens or batch * prompt_tokens
    rows = min(setting.max_num_seqs or batch, chunk)
    return activation_bytes(spec, chunk_tokens=chunk, sampled_rows=rows, tp=tp,
                            sampler_bytes_per_logit=engine.sampler_bytes_per_logit,
                            moe_chunk_tokens=engine.moe_chunk_tokens)


def kv_budget_bytes(spec: ModelSpec, accelerator: Accelerator, engine: EnginePreset, *, weights: WeightBytes,
                    activation: float, tp: int = 1, overheads: FrameworkOverheads | None = None) -> float:
    """Bytes of KV cache the engine can hold on one GPU (negative when even the weights do not fit)::

        vLLM       u × V − W − A − non_torch − nccl − NVLS − (CUDA graphs, since v0.21)
        SGLang     f × (V − context − nccl) − W
        TRT-LLM    0.9 × (V − context − cuBLAS − nccl − graphs − W − A)
        TGI v3     V − context − cuBLAS − nccl − W − A − (1 − 0.9) × V   (graphs are captured into the reserve)
        llama.cpp  V − context − W_gpu − compute buffer − fit margin (1 GiB)
        HF         V − context − cuBLAS − nccl − W − A

    V = ``visible_memory_bytes``; u, f the engine's fractions (``engine_setting``)."""
    o = overheads or framework_overheads()
    visible = visible_memory_bytes(accelerator, o)
    setting = engine_setting(engine, accelerator, tp=tp, spec=spec)
    parts = overhead_parts(engine, tp=tp, overheads=o, accelerator=accelerator)
    w = weights.total_bytes
    if engine.kv_budget is KvBudget.TOTAL_FRACTION:
        graphs = parts.get("cuda_graphs", 0.0) if engine.counts_cuda_graphs else 0.0
        comm = parts.get("nccl", 0.0) + parts.get("nccl_nvls", 0.0)
        return setting.memory_fraction * visible - w - activation - parts.get("non_torch", 0.0) - comm - graphs
    if engine.kv_budget is KvBudget.STATIC_FRACTION:
        return setting.memory_fraction * (visible - parts.get("cuda_context", 0.0) - parts.get("nccl", 0.0)) - w
    if engine.kv_budget is KvBudget.FREE_RESERVE:
        before_graphs = visible - sum(v for k, v in parts.items() if k != "cuda_graphs") - w - activation
        return before_graphs - (1 - setting.memory_fraction) * visible
    free = visible - sum(parts.values()) - w - activation
    if engine.kv_budget is KvBudget.FREE_FRACTION:
        return setting.memory_fraction * free
    return free - (engine.fit_margin_bytes if engine.kv_budget is KvBudget.CONTEXT else 0.0)


def _gpu_kv_bytes_per_seq(spec: ModelSpec, tokens: int, *, engine: EnginePreset, kv: NumberFormat, tp: int,
                          gpu_layers: int | None = None) -> float:
    """One sequence's KV bytes on one GPU, paged as the engine pages; llama.cpp only for its GPU layers.
    Attention KV plus, for state-space layers, the fixed state (``_gpu_state_bytes_per_seq``)."""
    state = _gpu_state_bytes_per_seq(spec, tp=tp, gpu_layers=gpu_layers)
    if gpu_layers is None or gpu_layers >= spec.num_layers:
        return state + kv_cache_bytes(spec, tokens_per_seq=tokens, kv_format=kv, tp=tp, mla=engine.mla_cache,
                                      block_size=engine.block_size)
    on_gpu = spec.layers[spec.num_layers - gpu_layers:]
    return state + sum(cached_tokens(x.attention, tokens) * kv_bytes_per_token_per_layer(
        x.attention, kv_format=kv, tp=tp, mla=engine.mla_cache) for x in on_gpu if x.attention is not None)


def _gpu_state_bytes_per_seq(spec: ModelSpec, *, tp: int, gpu_layers: int | None = None) -> float:
    """One sequence's Mamba state on one GPU, in the model dtype whatever the KV dtype (vLLM's
    ``mamba_cache_dtype`` "auto"); llama.cpp only for its GPU layers."""
    if not spec.is_hybrid:
        return 0.0
    state = ssm_state_bytes(spec, tp=tp)
    if gpu_layers is None or gpu_layers >= spec.num_layers:
        return state
    mixers = sum(x.mixer is not None for x in spec.layers)
    return state * sum(x.mixer is not None for x in spec.layers[spec.num_layers - gpu_layers:]) / mixers


def _capacity_tokens(spec: ModelSpec, budget: float, *, engine: EnginePreset, kv: NumberFormat, tp: int,
                     context: int, gpu_layers: int | None) -> int:
    """KV tokens a budget holds: whole blocks of ``block_size`` tokens; with sliding windows (or llama.cpp's
    partial offload) the tokens of as many ``context``-long sequences as fit, vLLM's 'GPU KV cache size'."""
    if budget <= 0:
        return 0
    windowed = any(x.attention is not None and x.attention.local_span is not None for x, _ in spec.layer_groups())
    if windowed or spec.is_hybrid or engine.kv_budget is KvBudget.CONTEXT:
        per_seq = _gpu_kv_bytes_per_seq(spec, context, engine=engine, kv=kv, tp=tp, gpu_layers=gpu_layers)
        tokens = int(budget / per_seq * context)
        if engine.kv_budget is KvBudget.CONTEXT:  # n_ctx: the preset's (0 = trained context), lowered by --fit
            return min(tokens, engine.context_tokens or spec.max_position_embeddings)
        return tokens
    per_block = engine.block_size * kv_bytes_per_token(spec, kv_format=kv, tp=tp, mla=engine.mla_cache)
    return int(budget // per_block) * engine.block_size


@dataclass(frozen=True, slots=True, kw_only=True)
class InferenceMemory:
    """One GPU's memory serving ``batch`` sequences of ``tokens_per_seq`` tokens on an engine.

    ``kv_cache_bytes`` is this batch's KV (paged as the engine pages); ``kv_budget_bytes`` the pool the engine
    sets aside (HF, llama.cpp: what is left for KV); ``kv_capacity_tokens`` the tokens that pool holds."""

    engine: str
    accelerator: str
    tp: int
    ep: int
    batch: int
    tokens_per_seq: int
    memory_fraction: float
    weights: WeightBytes
    kv_format: str
    kv_bytes_per_token: float
    kv_cache_bytes: float  # the per-request cache, whatever its form: attention KV + state-space states
    activation_bytes: float
    overheads: Mapping[str, float]
    kv_budget_bytes: float
    kv_capacity_tokens: int
    visible_bytes: float
    host_bytes: float = 0.0
    ssm_state_bytes: float = 0.0  # the part of kv_cache_bytes held as fixed Mamba states (hybrid models)

    @property
    def kv_cache_attention_bytes(self) -> float:
        """The attention layers' token cache: kv_cache_bytes less the state-space states."""
        return self.kv_cache_bytes - self.ssm_state_bytes

    @property
    def weights_bytes(self) -> float:
        return self.weights.total_bytes

    @property
    def overhead_bytes(self) -> float:
        return sum(self.overheads.values())

    @property
    def total_bytes(self) -> float:
        """What this batch needs on the GPU: weights + its KV cache + activations + framework overhead."""
        return self.weights_bytes + self.kv_cache_bytes + self.activation_bytes + self.overhead_bytes

    @property
    def reserved_bytes(self) -> float:
        """What the engine holds once started: the KV pool instead of this batch's KV."""
        return self.weights_bytes + max(self.kv_budget_bytes, self.kv_cache_bytes) + self.activation_bytes \
            + self.overhead_bytes

    @property
    def fits(self) -> bool:
        return self.kv_budget_bytes > 0 and self.kv_cache_bytes <= self.kv_budget_bytes

    @property
    def headroom_bytes(self) -> float:
        return self.kv_budget_bytes - self.kv_cache_bytes


def engine_kv_format(spec: ModelSpec, engine: EnginePreset) -> NumberFormat:
    """The KV dtype an engine uses by default: the model's ("auto") or, for llama.cpp, f16."""
    return parse_kv_format(engine.kv_dtype, spec)


def serving_memory(spec: ModelSpec, deployment: Deployment, batch: StaticBatch) -> InferenceMemory:
    """Per-GPU memory of serving a static ``batch`` on one replica of ``deployment`` (tp-way, and ep-way for
    experts), and what the engine's KV pool holds."""
    d, b = deployment, batch
    engine = d.served_engine
    o = d.overheads or framework_overheads()
    kv = d.kv_format or engine_kv_format(spec, engine)
    tp, tokens = d.tp, b.tokens_per_seq
    gpu_layers = (engine.n_gpu_layers or spec.num_layers + 1) if engine.kv_budget is KvBudget.CONTEXT else None
    weights = weight_bytes_per_gpu(spec, d.weights_format or checkpoint_weights_format(spec, engine), tp=tp, ep=d.ep,
                                   gpu_layers=gpu_layers)
    setting = engine_setting(engine, d.accelerator, tp=tp, spec=spec)
    activation = profiled_activation_bytes(spec, setting, tp=tp, batch=b.batch, prompt_tokens=b.prompt_tokens)
    budget = kv_budget_bytes(spec, d.accelerator, engine, weights=weights, activation=activation, tp=tp, overheads=o)
    per_seq = _gpu_kv_bytes_per_seq(spec, tokens, engine=engine, kv=kv, tp=tp, gpu_layers=gpu_layers)
    host_kv = 0.0
    if gpu_layers is not None and gpu_layers < spec.num_layers:
        host_kv = b.batch * (kv_cache_bytes(spec, tokens_per_seq=tokens, kv_format=kv, tp=tp,
                                            mla=engine.mla_cache) - per_seq)
    return InferenceMemory(
        engine=engine.key, accelerator=d.accelerator.key, tp=tp, ep=d.ep, batch=b.batch, tokens_per_seq=tokens,
        memory_fraction=setting.memory_fraction, weights=weights, kv_format=kv.key,
        kv_bytes_per_token=kv_bytes_per_token(spec, kv_format=kv, tp=tp, mla=engine.mla_cache),
        kv_cache_bytes=b.batch * per_seq, activation_bytes=activation,
        overheads=MappingProxyType(overhead_parts(engine, tp=tp, overheads=o, accelerator=d.accelerator)),
        kv_budget_bytes=budget,
        kv_capacity_tokens=_capacity_tokens(spec, budget, engine=engine, kv=kv, tp=tp, context=tokens,
                                            gpu_layers=gpu_layers),
        visible_bytes=visible_memory_bytes(d.accelerator, o), host_bytes=weights.host_bytes + host_kv,
        ssm_state_bytes=b.batch * _gpu_state_bytes_per_seq(spec, tp=tp, gpu_layers=gpu_layers))


def inference_memory(spec: ModelSpec, accelerator: Accelerator, *, batch: int = 1, prompt_tokens: int,
                     output_tokens: int = 0, engine: EnginePreset | None = None,
                     weights_format: NumberFormat | None = None, kv_format: NumberFormat | None = None,
                     tp: int = 1, ep: int = 1, overheads: FrameworkOverheads | None = None) -> InferenceMemory:
    """``serving_memory`` with its Deployment and StaticBatch given as keywords (vLLM by default)."""
    deployment = Deployment(accelerator=accelerator, engine=engine or get_engine("vllm"), tp=tp, ep=ep,
                            weights_format=weights_format, kv_format=kv_format, overheads=overheads)
    return serving_memory(spec, deployment, StaticBatch(batch=batch, prompt_tokens=prompt_tokens,
                                                        output_tokens=output_tokens))


def kv_capacity_tokens(spec: ModelSpec, accelerator: Accelerator, engine: EnginePreset | None = None, *,
                       tp: int = 1, ep: int = 1, weights_format: NumberFormat | None = None,
                       kv_format: NumberFormat | None = None, context_tokens: int | None = None,
                       overheads: FrameworkOverheads | None = None) -> int:
    """KV tokens one replica's pool holds with the engine's default settings, block rounding included.

    ``context_tokens`` (default: the model's max_position_embeddings) matters for sliding-window models, for
    llama.cpp (n_ctx; its pool is at most that) and for HF (the prefill it must leave room for)."""
    engine = engine or get_engine("vllm")
    context = context_tokens or spec.max_position_embeddings
    tokens = inference_memory(spec, accelerator, prompt_tokens=context, engine=engine, weights_format=weights_format,
                              kv_format=kv_format, tp=tp, ep=ep, overheads=overheads).kv_capacity_tokens
    return min(tokens, context) if context_tokens and engine.kv_budget is KvBudget.CONTEXT else tokens


def max_batch_for_context(spec: ModelSpec, accelerator: Accelerator, engine: EnginePreset | None = None, *,
                          context_tokens: int, tp: int = 1, ep: int = 1, weights_format: NumberFormat | None = None,
                          kv_format: NumberFormat | None = None,
                          overheads: FrameworkOverheads | None = None) -> int:
    """The most sequences of ``context_tokens`` tokens whose KV fits at once (0 when not even one does).
    Memory only: the engine's max_num_seqs may cap the running batch lower."""
    def fits(batch: int) -> bool:
        return inference_memory(spec, accelerator, batch=batch, prompt_tokens=context_tokens, engine=engine,
                                weights_format=weights_format, kv_format=kv_format, tp=tp, ep=ep,
                                overheads=overheads).fits

    if not fits(1):
        return 0
    low, high = 1, 2
    while fits(high):
        low, high = high, high * 2
        if high > 1 << 24:
            return low
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low
