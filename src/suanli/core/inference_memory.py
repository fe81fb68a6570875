"""Per-GPU inference memory — weights, KV cache, activations, framework overhead — and what each engine's
KV-cache budget holds.

Weights. Quantized formats quantize the Linear weights inside the blocks (attention projections, MLP and
expert matrices) and count their scales exactly (``NumberFormat.tensor_bits`` on each TP shard); embeddings,
the output head, routers, norms and biases stay in 16 bits, as GPTQ/AWQ/bitsandbytes/fp8 checkpoints and vLLM
keep them. llama.cpp file types (Q4_K_M, ...) quantize every matrix by their own per-tensor rule
(``gguf_mix_bits_per_param``; token embeddings and output included), norms in fp32. Float formats of 16 bits
or more store everything in that format. TP splits column-parallel matrices by output rows and row-parallel
ones by input columns; K/V projections by KV heads (at least one per rank); the MLA latent down-projections
and routers are replicated; embeddings and the output head are vocab-parallel (⌈vocab / tp⌉ rows per rank);
experts are split ep ways and each expert tp / ep ways. Norms and biases are counted replicated (< 0.1%).

Activations. Inference keeps nothing for a backward pass, so the peak is one layer's widest live set over a
prefill chunk of T tokens, or the sampler's, whichever is larger::

    forward  = T × 2 B × (2·h + widest(layer))   widest: gated MLP 3·i/tp, MoE top_k·(3·i_e/tp + h),
                                                 attention (H + kv)·(d + d_v)/tp
    sampler  = T × h × 2 B + rows × vocab × sampler_bytes_per_logit

Engines (``spec.engines``) turn what is left into a KV pool; see ``kv_budget_bytes``.

Hybrid and state-space models (Mamba-2, Jamba, Bamba, Nemotron-H). The per-request cache is the attention
layers' KV plus a fixed conv + SSM state per Mamba layer (``kv_cache.ssm_state_bytes``), independent of the
context length; ``kv_cache_bytes`` holds both and ``ssm_state_bytes`` the state part. vLLM's hybrid
allocator (v1 ``HybridKVCacheCoordinator``, ``MambaSpec``) takes both from one pool: a sequence holds its
attention pages plus one state slot per Mamba layer, so the pool's capacity in tokens is that of as many
``context``-long sequences as fit, each costing its attention KV plus its state. Mamba weights shard as vLLM's
``MambaMixer2`` does: in_proj column-parallel, out_proj row-parallel; conv, A, D and dt_bias split with the
heads (counted in ``other``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Literal

from suanli.core.kv_cache import (
    cached_tokens,
    default_kv_format,
    kv_bytes_per_token,
    kv_bytes_per_token_per_layer,
    kv_cache_bytes,
    kv_heads_per_rank,
    parse_kv_format,
    ssm_state_bytes,
)
from suanli.core.params import layer_params
from suanli.core.vision import vision_params
from suanli.errors import LayoutError, SpecError, require_positive
from suanli.spec.engines import EnginePreset, FrameworkOverheads, KvBudget, framework_overheads, get_engine
from suanli.spec.gguf_mix import FILE_TYPES, gguf_mix_bits_per_param
from suanli.spec.hardware import Accelerator
from suanli.spec.model import GatedDeltaNet, Layer, Mamba2Mixer, Mixer, Mlp, ModelSpec, Moe, ShortConv
from suanli.spec.precision import Family, NumberFormat, torch_dtype_format

Split = Literal["column", "row", "kv", "replicated"]
_HALF_BITS = 16  # embeddings, output head, norms, biases and routers next to quantized Linear weights
_ACT_BYTES = 2  # activations in bf16 / fp16


@dataclass(frozen=True, slots=True, kw_only=True)
class LinearWeight:
    """One Linear weight of a block ([out_features, in_features]), ``count`` times, with its TP split and the
    llama.cpp tensor role that picks its type in a GGUF file mix."""

    role: str
    out_features: int
    in_features: int
    split: Split
    count: int = 1
    expert: bool = False


def _mlp_linears(mlp: Mlp, h: int, *, count: int = 1, expert: bool = False) -> list[LinearWeight]:
    i = mlp.intermediate_size
    up = [LinearWeight(role="ffn_gate", out_features=i, in_features=h, split="column", count=count, expert=expert)]
    if mlp.gated:
        up.append(LinearWeight(role="ffn_up", out_features=i, in_features=h, split="column", count=count,
                               expert=expert))
    return [*up, LinearWeight(role="ffn_down", out_features=h, in_features=i, split="row", count=count,
                              expert=expert)]


def _mixer_linears(m: Mixer, h: int) -> list[LinearWeight]:
    """Mamba projections as vLLM shards them: in_proj column-, out_proj row-parallel (Mamba-1 also x_proj
    row-parallel into a replicated dt/B/C, dt_proj column-parallel)."""
    if isinstance(m, Mamba2Mixer):
        width = 2 * m.intermediate_size + 2 * m.n_groups * m.d_state + m.num_heads
        return [LinearWeight(role="ssm_in", out_features=width, in_features=h, split="column"),
                LinearWeight(role="ssm_out", out_features=h, in_features=m.intermediate_size, split="row")]
    if isinstance(m, GatedDeltaNet):  # vLLM fuses qkvz and ba; both column-parallel
        width = 2 * m.key_dim + 2 * m.value_dim + 2 * m.num_v_heads
        return [LinearWeight(role="ssm_in", out_features=width, in_features=h, split="column"),
                LinearWeight(role="ssm_out", out_features=h, in_features=m.value_dim, split="row")]
    if isinstance(m, ShortConv):
        return [LinearWeight(role="ssm_in", out_features=3 * m.channels, in_features=h, split="column"),
                LinearWeight(role="ssm_out", out_features=h, in_features=m.channels, split="row")]
    i = m.intermediate_size
    return [LinearWeight(role="ssm_in", out_features=2 * i, in_features=h, split="column"),
            LinearWeight(role="ssm_x", out_features=m.dt_rank + 2 * m.d_state, in_features=i, split="row"),
            LinearWeight(role="ssm_dt", out_features=i, in_features=m.dt_rank, split="column"),
            LinearWeight(role="ssm_out", out_features=h, in_features=i, split="row")]


def _ffn_linears(layer: Layer, h: int) -> list[LinearWeight]:
    ffn = layer.ffn
    if ffn is None:
        return []
    if isinstance(ffn, Mlp):
        return _mlp_linears(ffn, h)
    shared = _mlp_linears(ffn.shared, h) if ffn.shared is not None else []
    return [*_mlp_linears(ffn.expert, h, count=ffn.num_experts, expert=True), *shared]


def block_linears(layer: Layer, h: int) -> tuple[LinearWeight, ...]:
    """The Linear weights of one block, as vLLM shards them (routers are left to ``other``)."""
    a = layer.attention
    if a is None:
        mixer = _mixer_linears(layer.mixer, h) if layer.mixer is not None else []
        return (*mixer, *_ffn_linears(layer, h))
    if a.mla is None:
        q_out = a.num_heads * a.head_dim * (2 if a.output_gate else 1)  # Qwen3-Next's gate rides on q_proj
        attn = [LinearWeight(role="attn_q", out_features=q_out, in_features=h, split="column"),
                LinearWeight(role="attn_k", out_features=a.num_kv_heads * a.head_dim, in_features=h, split="kv"),
                LinearWeight(role="attn_v", out_features=a.num_kv_heads * a.v_head_dim, in_features=h, split="kv")]
    else:
        m, q_width = a.mla, a.num_heads * a.head_dim
        attn = ([LinearWeight(role="attn_q", out_features=q_width, in_features=h, split="column")]
                if m.q_lora_rank is None else
                [LinearWeight(role="attn_q_a", out_features=m.q_lora_rank, in_features=h, split="replicated"),
                 LinearWeight(role="attn_q_b", out_features=q_width, in_features=m.q_lora_rank, split="column")])
        attn += [LinearWeight(role="attn_kv_a_mqa", out_features=m.kv_lora_rank + m.qk_rope_head_dim,
                              in_features=h, split="replicated"),
                 LinearWeight(role="attn_kv_b", out_features=a.num_heads * (m.qk_nope_head_dim + a.v_head_dim),
                              in_features=m.kv_lora_rank, split="column")]
    o_in = a.num_heads * (a.v_head_dim if a.mla is not None else a.head_dim)
    attn.append(LinearWeight(role="attn_output", out_features=h, in_features=o_in, split="row"))
    if layer.mixer is not None:  # Falcon-H1: Mamba beside attention in the same block
        attn += _mixer_linears(layer.mixer, h)
    return (*attn, *_ffn_linears(layer, h))


def _shard(w: LinearWeight, layer: Layer, tp: int, ep: int) -> tuple[float, int, int]:
    """(count, out, in) of the part of ``w`` one GPU holds."""
    count, out, inp, split = float(w.count), w.out_features, w.in_features, w.split
    if w.expert:
        if w.count % ep:
            raise LayoutError(f"{w.count} experts cannot be split over ep={ep}; use an ep that divides {w.count}")
        count, tp = count / ep, max(1, tp // ep)
    if split == "column":
        out = math.ceil(out / tp)
    elif split == "row":
        inp = math.ceil(inp / tp)
    elif split == "kv" and layer.attention is not None:
        out = kv_heads_per_rank(layer.attention, tp) * (out // layer.attention.num_kv_heads)
    return count, out, inp


@dataclass(frozen=True, slots=True, kw_only=True)
class WeightBytes:
    """Weight bytes one GPU holds, by part; ``host_bytes`` are llama.cpp layers left in host memory."""

    format_key: str
    linear_bytes: float
    embedding_bytes: float
    lm_head_bytes: float
    other_bytes: float
    host_bytes: float = 0.0
    vision_bytes: float = 0.0  # a VLM's image encoder and projector (kept in 16 bits, sharded over tp)

    @property
    def total_bytes(self) -> float:
        return self.linear_bytes + self.embedding_bytes + self.lm_head_bytes + self.other_bytes + self.vision_bytes


def _file_mix(fmt: NumberFormat) -> NumberFormat | None:
    """The llama.cpp file-type rule for a GGUF format (q4_0 as a file keeps output.weight in q6_k)."""
    if fmt.family is Family.GGUF_MIX:
        return fmt
    return FILE_TYPES.get(fmt.key) if fmt.family is Family.GGUF else None


class _Bits:
    """Bits per parameter by role for one model and weight format."""

    def __init__(self, spec: ModelSpec, fmt: NumberFormat) -> None:
        self.spec, self.fmt, self.mix = spec, fmt, _file_mix(fmt)
        a = spec.first_attention
        self.n_gqa = a.num_heads // a.num_kv_heads if a is not None else 1
        wide_float = fmt.family is Family.FLOAT and fmt.bits_per_element >= _HALF_BITS
        self.dense = fmt.bits_per_element if wide_float else _HALF_BITS
        self.other = 32 if self.mix is not None else self.dense  # llama.cpp keeps 1-D tensors in F32

    def linear(self, w: LinearWeight, count: float, out: int, inp: int, kept: bool = False) -> float:
        if kept:  # left unquantized by the checkpoint (modules_to_not_convert): 16 bits like the embeddings
            return count * out * inp * _HALF_BITS
        if self.mix is None:
            return count * self.fmt.tensor_bits(out_features=out, in_features=inp)
        per_layer = {w.role: w.count * w.out_features * w.in_features}
        bits = gguf_mix_bits_per_param(self.mix, role_params=per_layer, n_layers=self.spec.num_layers,
                                       n_gqa=self.n_gqa)
        return count * out * inp * bits

    def embedding(self, rows: float, head_rows: float) -> tuple[float, float]:
        """Bits of the token embedding and of the untied output head (``head_rows`` = 0 when tied)."""
        h = self.spec.hidden_size
        if self.mix is None:
            return rows * h * self.dense, head_rows * h * self.dense
        if not head_rows:  # tied: llama.cpp applies the output rule to token_embd
            return rows * h * gguf_mix_bits_per_param(self.mix, role_params={"token_embd": 1}, n_layers=1), 0.0
        head = gguf_mix_bits_per_param(self.mix, role_params={"output": 1}, n_layers=1)
        both = gguf_mix_bits_per_param(self.mix, role_params={"token_embd": 1, "output": 1}, n_layers=1)
        return rows * h * (2 * both - head), head_rows * h * head


def linear_group(w: LinearWeight, layer: Layer) -> str:
    """attention, experts, shared_experts, mlp or mixer: the groups ``modules_to_not_convert`` names."""
    if w.role.startswith("attn_"):
        return "attention"
    if w.role.startswith("ssm_"):
        return "mixer"
    return "experts" if w.expert else "shared_experts" if layer.is_moe else "mlp"


def _kept(w: LinearWeight, layer: Layer, unquantized: frozenset[str]) -> bool:
    group = linear_group(w, layer)
    return bool(unquantized) and (group in unquantized or w.role in unquantized
                                  or f"{group}/{w.role}" in unquantized)


def checkpoint_weights_format(spec: ModelSpec, engine: EnginePreset) -> NumberFormat:
    """The weight format an engine loads when none is asked for: the checkpoint's quantized layout
    (``quantization_config``) on engines that load HF checkpoints; else HF keeps ``torch_dtype`` and serving
    engines run fp32 checkpoints in bf16. llama.cpp converts to its own files: convert_hf_to_gguf.py keeps MXFP4
    experts as ggml's MXFP4 type (gpt-oss) and dequantizes other layouts (FP8 blocks, GPTQ, AWQ)."""
    q = spec.quantization
    if q is not None and (engine.kv_budget is not KvBudget.CONTEXT or q.weights.family is Family.MICROSCALING):
        return q.weights
    hf = engine.kv_budget is KvBudget.FREE_MEMORY
    return torch_dtype_format(spec.torch_dtype) if hf else default_kv_format(spec)


def _unquantized(spec: ModelSpec, fmt: NumberFormat) -> frozenset[str]:
    """What the checkpoint leaves unquantized, when ``fmt`` is the checkpoint's own layout."""
    q = spec.quantization
    return q.unquantized if q is not None and q.weights == fmt else frozenset()


def _check_tp(spec: ModelSpec, tp: int) -> None:
    require_positive("tp", tp)
    for layer, _ in spec.layer_groups():
        if isinstance(layer.mixer, Mamba2Mixer) and layer.mixer.num_heads % tp:
            heads = layer.mixer.num_heads
            options = ", ".join(str(d) for d in range(1, heads + 1) if heads % d == 0)
            raise LayoutError(f"mamba num_heads ({heads}) is not divisible by tp ({tp}); use tp in {{{options}}}")
        if layer.attention is None:
            continue
        heads = layer.attention.num_heads
        if heads % tp:
            options = ", ".join(str(d) for d in range(1, heads + 1) if heads % d == 0)
            raise LayoutError(f"num_attention_heads ({heads}) is not divisible by tp ({tp}); use tp in {{{options}}}")
        kv_heads_per_rank(layer.attention, tp)


def vision_weight_bytes(spec: ModelSpec, dense_bits: float, tp: int) -> float:
    """A vision tower's weights on one GPU: its parameters at the dense width (quantized checkpoints leave the
    tower unquantized, e.g. AWQ/GPTQ ``modules_to_not_convert``), split over ``tp`` as vLLM's parallel
    linears do. Vision activations and the encoder cache are not modelled."""
    if spec.vision is None:
        return 0.0
    return vision_params(spec.vision) * dense_bits / 8 / tp


@lru_cache(maxsize=512)
def weight_bytes_per_gpu(spec: ModelSpec, fmt: NumberFormat | None = None, *, tp: int = 1, ep: int = 1,
                         gpu_layers: int | None = None) -> WeightBytes:
    """Weight bytes on one GPU (rules in the module docstring). ``gpu_layers`` (llama.cpp -ngl) keeps only the
    last N blocks on the GPU, the output head too when N > num_layers; token embeddings then stay on the host.
    Pure over frozen inputs and asked for by memory, setup and capacity alike, so cached."""
    fmt = fmt or (spec.quantization.weights if spec.quantization else torch_dtype_format(spec.torch_dtype))
    _check_tp(spec, tp)
    require_positive("ep", ep)
    bits, unquantized = _Bits(spec, fmt), _unquantized(spec, fmt)
    per_group: list[tuple[float, float]] = []
    for layer, _ in spec.layer_groups():
        linears = block_linears(layer, spec.hidden_size)
        linear = sum(bits.linear(w, *_shard(w, layer, tp, ep), _kept(w, layer, unquantized)) for w in linears)
        other = layer_params(layer, spec.hidden_size) - sum(w.count * w.out_features * w.in_features for w in linears)
        per_group.append((linear / 8, other * bits.other / 8))
    group_of = spec.group_of_layers()
    per_layer = [per_group[g] for g in group_of]
    vocab_rows = math.ceil(spec.vocab_size / tp)
    head_rows = vocab_rows if spec.lm_head and not spec.tie_word_embeddings else 0
    extra_rows = spec.learned_position_rows + spec.token_type_vocab_size
    embed_bits, head_bits = bits.embedding(vocab_rows, head_rows)
    embedding = (embed_bits + extra_rows * spec.hidden_size * bits.dense) / 8
    outer_other = sum(n.size for n in (spec.final_norm, spec.embedding_norm) if n is not None) * bits.other / 8
    on_gpu = per_layer if gpu_layers is None else per_layer[max(0, spec.num_layers - gpu_layers):]
    host_layers = per_layer[: spec.num_layers - len(on_gpu)]
    weights = WeightBytes(format_key=fmt.key, linear_bytes=sum(x[0] for x in on_gpu),
                          embedding_bytes=embedding, lm_head_bytes=head_bits / 8,
                          other_bytes=sum(x[1] for x in on_gpu) + outer_other,
                          vision_bytes=vision_weight_bytes(spec, bits.dense, tp))
    if gpu_layers is None:
        return weights
    head_on_gpu = gpu_layers > spec.num_layers
    host = (sum(sum(x) for x in host_layers) + embedding
            + (0.0 if head_on_gpu else weights.lm_head_bytes + outer_other))
    return WeightBytes(format_key=fmt.key, linear_bytes=weights.linear_bytes, embedding_bytes=0.0,
                       lm_head_bytes=weights.lm_head_bytes if head_on_gpu else 0.0,
                       other_bytes=weights.other_bytes - (0.0 if head_on_gpu else outer_other), host_bytes=host,
                       vision_bytes=weights.vision_bytes)


# ---- activations ------------------------------------------------------------------------------------------

def _widest(layer: Layer, h: int, tp: int) -> float:
    """Per-token width of a block's largest live intermediates, per TP rank (module docstring)."""
    a, ffn = layer.attention, layer.ffn
    if a is not None:
        attention = (a.num_heads + a.num_kv_heads) * (a.head_dim + a.v_head_dim) / tp
    else:  # Mamba: the in_proj output (z, x, B, C, dt) is the widest live tensor
        attention = _mixer_linears(layer.mixer, h)[0].out_features / tp if layer.mixer is not None else 0.0
    if ffn is None:
        return attention
    if isinstance(ffn, Moe):
        width = ffn.expert.intermediate_size * (3 if ffn.expert.gated else 2)
        mlp = ffn.top_k * (width / tp + h)
    else:
        mlp = ffn.intermediate_size * (3 if ffn.gated else 2) / tp
    return max(attention, mlp)


def activation_bytes(spec: ModelSpec, *, chunk_tokens: int, sampled_rows: int, tp: int = 1,
                     sampler_bytes_per_logit: float = 8.0) -> float:
    """Peak activation workspace on one GPU for a prefill chunk of ``chunk_tokens`` tokens followed by sampling
    ``sampled_rows`` rows: max(forward, sampler), formulas in the module docstring."""
    require_positive("chunk_tokens", chunk_tokens)
    h = spec.hidden_size
    widest = max(_widest(layer, h, tp) for layer, _ in spec.layer_groups())
    forward = chunk_tokens * _ACT_BYTES * (2 * h + widest)
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


def engine_setting(engine: EnginePreset, accelerator: Accelerator, *, tp: int = 1) -> EngineSetting:
    """Resolve GPU-dependent defaults: vLLM's batch limits and SGLang's mem_fraction_static and chunk size."""
    chunk, seqs = engine.batch_defaults(accelerator.key, accelerator.memory_bytes)
    rule = engine.static_fraction
    if rule is not None and engine.memory_fraction is None:
        chunk, seqs = rule.settings(_driver_total(accelerator) / 2**20, tp)
    return EngineSetting(engine=engine, memory_fraction=engine.memory_fraction_for(_driver_total(accelerator), tp),
                         chunk_tokens=chunk, max_num_seqs=seqs)


def overhead_parts(engine: EnginePreset, *, tp: int, overheads: FrameworkOverheads | None = None) -> dict[str, float]:
    """Framework memory outside weights, KV and activations on one GPU, by named assumption. vLLM's cuBLAS
    workspace sits inside its profiled activation peak; llama.cpp allocates no PyTorch workspace."""
    o = overheads or framework_overheads()
    parts = {"cuda_context": o.cuda_context_bytes}
    if engine.kv_budget is KvBudget.TOTAL_FRACTION:
        parts["non_torch"] = o.non_torch_bytes
    elif engine.kv_budget is not KvBudget.CONTEXT:
        parts["cublas_workspace"] = o.cublas_workspace_bytes
    if tp > 1:
        parts["nccl"] = o.nccl_bytes
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
                            sampler_bytes_per_logit=engine.sampler_bytes_per_logit)


def kv_budget_bytes(spec: ModelSpec, accelerator: Accelerator, engine: EnginePreset, *, weights: WeightBytes,
                    activation: float, tp: int = 1, overheads: FrameworkOverheads | None = None) -> float:
    """Bytes of KV cache the engine can hold on one GPU (negative when even the weights do not fit)::

        vLLM       u × V − W − A − non_torch − nccl − (CUDA graphs, since v0.21)
        SGLang     f × (V − context − nccl) − W
        TRT-LLM    0.9 × (V − context − cuBLAS − nccl − graphs − W − A)
        llama.cpp  V − context − W_gpu − compute buffer − fit margin (1 GiB)
        HF         V − context − cuBLAS − nccl − W − A

    V = ``visible_memory_bytes``; u, f the engine's fractions (``engine_setting``)."""
    o = overheads or framework_overheads()
    visible = visible_memory_bytes(accelerator, o)
    setting = engine_setting(engine, accelerator, tp=tp)
    parts = overhead_parts(engine, tp=tp, overheads=o)
    w = weights.total_bytes
    if engine.kv_budget is KvBudget.TOTAL_FRACTION:
        graphs = parts.get("cuda_graphs", 0.0) if engine.counts_cuda_graphs else 0.0
        return setting.memory_fraction * visible - w - activation - parts["non_torch"] - parts.get("nccl", 0.0) - graphs
    if engine.kv_budget is KvBudget.STATIC_FRACTION:
        return setting.memory_fraction * (visible - parts["cuda_context"] - parts.get("nccl", 0.0)) - w
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


def inference_memory(spec: ModelSpec, accelerator: Accelerator, *, batch: int = 1, prompt_tokens: int,
                     output_tokens: int = 0, engine: EnginePreset | None = None,
                     weights_format: NumberFormat | None = None, kv_format: NumberFormat | None = None,
                     tp: int = 1, ep: int = 1, overheads: FrameworkOverheads | None = None) -> InferenceMemory:
    """Per-GPU memory of serving ``batch`` sequences of ``prompt_tokens + output_tokens`` tokens (vLLM by
    default) with a tp-way (and ep-way for experts) split, and what the engine's KV pool holds."""
    require_positive("batch", batch)
    require_positive("prompt_tokens", prompt_tokens)
    if output_tokens < 0:
        raise SpecError(f"output_tokens must be zero or positive, got {output_tokens}")
    engine = engine or get_engine("vllm")
    o = overheads or framework_overheads()
    kv = kv_format or engine_kv_format(spec, engine)
    tokens = prompt_tokens + output_tokens
    gpu_layers = (engine.n_gpu_layers or spec.num_layers + 1) if engine.kv_budget is KvBudget.CONTEXT else None
    weights_format = weights_format or checkpoint_weights_format(spec, engine)
    weights = weight_bytes_per_gpu(spec, weights_format, tp=tp, ep=ep, gpu_layers=gpu_layers)
    setting = engine_setting(engine, accelerator, tp=tp)
    activation = profiled_activation_bytes(spec, setting, tp=tp, batch=batch, prompt_tokens=prompt_tokens)
    budget = kv_budget_bytes(spec, accelerator, engine, weights=weights, activation=activation, tp=tp, overheads=o)
    per_seq = _gpu_kv_bytes_per_seq(spec, tokens, engine=engine, kv=kv, tp=tp, gpu_layers=gpu_layers)
    host_kv = 0.0
    if gpu_layers is not None and gpu_layers < spec.num_layers:
        host_kv = batch * (kv_cache_bytes(spec, tokens_per_seq=tokens, kv_format=kv, tp=tp,
                                          mla=engine.mla_cache) - per_seq)
    return InferenceMemory(
        engine=engine.key, accelerator=accelerator.key, tp=tp, ep=ep, batch=batch, tokens_per_seq=tokens,
        memory_fraction=setting.memory_fraction, weights=weights, kv_format=kv.key,
        kv_bytes_per_token=kv_bytes_per_token(spec, kv_format=kv, tp=tp, mla=engine.mla_cache),
        kv_cache_bytes=batch * per_seq, activation_bytes=activation,
        overheads=MappingProxyType(overhead_parts(engine, tp=tp, overheads=o)), kv_budget_bytes=budget,
        kv_capacity_tokens=_capacity_tokens(spec, budget, engine=engine, kv=kv, tp=tp, context=tokens,
                                            gpu_layers=gpu_layers),
        visible_bytes=visible_memory_bytes(accelerator, o), host_bytes=weights.host_bytes + host_kv,
        ssm_state_bytes=batch * _gpu_state_bytes_per_seq(spec, tp=tp, gpu_layers=gpu_layers))


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
