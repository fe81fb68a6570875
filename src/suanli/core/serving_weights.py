"""Weight bytes per GPU when serving: which Linear weights a format quantizes, how tensor and expert parallelism
shard them, what a checkpoint leaves unquantized. Used by ``inference_memory`` and the serving time model.

Quantized formats quantize the Linear weights inside the blocks (attention projections, MLP and expert
matrices) and count their scales exactly (``NumberFormat.tensor_bits`` on each TP shard); embeddings, the output
head, routers, norms and biases stay in 16 bits, as GPTQ/AWQ/bitsandbytes/fp8 checkpoints and vLLM keep them.
llama.cpp file types (Q4_K_M, ...) quantize every matrix by their own per-tensor rule
(``gguf_mix_bits_per_param``; token embeddings and output included), norms in fp32. Float formats of 16 bits or
more store everything in that format. TP splits column-parallel matrices by output rows and row-parallel ones by
input columns; K/V projections by KV heads (at least one per rank); the MLA latent down-projections and routers
are replicated; embeddings and the output head are vocab-parallel (⌈vocab / tp⌉ rows per rank); experts are split
ep ways and each expert tp / ep ways. Norms and biases are counted replicated (< 0.1%). Mamba weights shard as
vLLM's ``MambaMixer2`` does: in_proj column-parallel, out_proj row-parallel; conv, A, D and dt_bias split with the
heads (counted in ``other``).
"""


from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from suanli.core.kv_cache import (
    default_kv_format,
    kv_heads_per_rank,
)
from suanli.core.params import layer_params
from suanli.core.vision import vision_params
from suanli.errors import LayoutError, require_positive
from suanli.spec.engines import EnginePreset, KvBudget
from suanli.spec.gguf_mix import FILE_TYPES, gguf_mix_bits_per_param
from suanli.spec.model import (
    GatedDeltaNet,
    KimiDeltaAttention,
    Layer,
    LightningAttention,
    Mamba2Mixer,
    Mixer,
    Mlp,
    ModelSpec,
    ShortConv,
)
from suanli.spec.precision import Family, NumberFormat, torch_dtype_format

Split = Literal["column", "row", "kv", "replicated"]
_HALF_BITS = 16  # embeddings, output head, norms, biases and routers next to quantized Linear weights


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


def mixer_linears(m: Mixer, h: int) -> list[LinearWeight]:
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
    if isinstance(m, KimiDeltaAttention):  # vLLM: q/k/v, f_b, g_b, b column-; f_a, g_a replicated; o row-parallel
        width = m.num_heads * m.head_dim
        return [LinearWeight(role="ssm_in", out_features=3 * width, in_features=h, split="column"),
                LinearWeight(role="ssm_gate_a", out_features=2 * m.head_dim, in_features=h, split="replicated"),
                LinearWeight(role="ssm_gate_b", out_features=width, in_features=m.head_dim, split="column", count=2),
                LinearWeight(role="ssm_beta", out_features=m.num_heads, in_features=h, split="column"),
                LinearWeight(role="ssm_out", out_features=h, in_features=width, split="row")]
    if isinstance(m, LightningAttention):  # qkv_proj and output_gate column-, out_proj row-parallel
        width = m.num_heads * m.head_dim
        return [LinearWeight(role="attn_qkv", out_features=3 * width, in_features=h, split="column"),
                LinearWeight(role="ssm_gate", out_features=width, in_features=h, split="column"),
                LinearWeight(role="attn_output", out_features=h, in_features=width, split="row")]
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
        mixer = mixer_linears(layer.mixer, h) if layer.mixer is not None else []
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
        attn += mixer_linears(layer.mixer, h)
    return (*attn, *_ffn_linears(layer, h))


def linear_shard(w: LinearWeight, layer: Layer, tp: int, ep: int) -> tuple[float, int, int]:
    """(count, out, in) of the part of ``w`` one GPU holds."""
    count, out, inp, split = float(w.count), w.out_features, w.in_features, w.split
    if w.expert:
        if w.count % ep:
            raise LayoutError(f"{w.count} experts cannot be split over ep={ep}; use an ep that divides {w.count}",
                              key="error.core.experts_ep", fields={"experts": w.count, "ep": ep})
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


def _divisors(n: int) -> str:
    """``{1, 2, …, n}``: the tp values that split ``n`` heads evenly, for an error message."""
    return "{" + ", ".join(str(d) for d in range(1, n + 1) if n % d == 0) + "}"


def _check_tp(spec: ModelSpec, tp: int) -> None:
    require_positive("tp", tp)
    for layer, _ in spec.layer_groups():
        if isinstance(layer.mixer, Mamba2Mixer) and layer.mixer.num_heads % tp:
            heads = layer.mixer.num_heads
            raise LayoutError(f"mamba num_heads ({heads}) is not divisible by tp ({tp}); use tp in {_divisors(heads)}",
                              key="error.core.mamba_heads_tp",
                              fields={"heads": heads, "tp": tp, "choices": _divisors(heads)})
        if layer.attention is None:
            continue
        heads = layer.attention.num_heads
        if heads % tp:
            raise LayoutError(f"num_attention_heads ({heads}) is not divisible by tp ({tp}); "
                              f"use tp in {_divisors(heads)}", key="error.core.attention_heads_tp",
                              fields={"heads": heads, "tp": tp, "choices": _divisors(heads)})
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
        linear = sum(bits.linear(w, *linear_shard(w, layer, tp, ep), _kept(w, layer, unquantized)) for w in linears)
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
