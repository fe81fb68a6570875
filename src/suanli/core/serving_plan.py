"""What one layer runs on one GPU when serving: the per-GPU GEMM shards (fused as engines fuse them), the
attention or state-space dimensions, the KV bytes per token, the elementwise streams — ``LayerPlan`` — and
where each layer's weights live (``Placement``: llama.cpp host layers). ``serving_ops`` prices them."""


from __future__ import annotations

from dataclasses import dataclass

from suanli.core.inference_memory import WeightBytes, block_linears
from suanli.core.kv_cache import (
    default_kv_format,
    kv_bytes_per_token_per_layer,
    kv_heads_per_rank,
    kv_vector_bits,
    ssm_state_bytes_per_layer,
)
from suanli.core.serving_weights import linear_shard
from suanli.errors import SpecError
from suanli.spec.engines import MlaCache
from suanli.spec.hardware import Accelerator
from suanli.spec.model import Layer, ModelSpec, Moe
from suanli.spec.precision import Family, NumberFormat

ACT_BYTES = 2.0  # activations in bf16 / fp16
FUSED_GEMMS = {"attn_q": "qkv", "attn_k": "qkv", "attn_v": "qkv", "ffn_gate": "gate_up", "ffn_up": "gate_up"}
WEIGHT_ONLY_FAMILIES = (Family.GPTQ, Family.AWQ, Family.NF4, Family.GGUF, Family.GGUF_MIX)
NARROW_FORMATS = ("fp8", "int8", "int4", "fp4")  # GEMM formats below 16 bits: ``low_precision_gemm_ratio`` applies
TILE_ROWS = 64  # rows of a GEMM thread-block tile (cuBLAS/CUTLASS skinny-GEMM kernels)
STREAM_KERNELS = 6  # norm ×2, residual ×2, RoPE, activation
OFFLOAD_MIN_TOKENS = 32  # llama.cpp runs host layers' batches of at least this many tokens on the GPU
BF16_FORMAT = NumberFormat(key="bf16", family=Family.FLOAT, bits_per_element=16, compute_format="bf16", source="16-bit")


Rows = tuple[tuple[float, int, float], ...]
"""Row groups of one engine step: (sequences, new tokens each, cached context each)."""


@dataclass(frozen=True, slots=True)
class Cost:
    """Time and traffic of some kernels, by what bounds them (see ``inference_time.PhaseTime``)."""

    compute_s: float = 0.0
    weights_s: float = 0.0
    kv_s: float = 0.0
    activations_s: float = 0.0
    comm_s: float = 0.0
    overhead_s: float = 0.0
    flops: float = 0.0
    weight_bytes: float = 0.0
    kv_bytes: float = 0.0
    activation_bytes: float = 0.0

    @property
    def time_s(self) -> float:
        return self.compute_s + self.weights_s + self.kv_s + self.activations_s + self.comm_s + self.overhead_s

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.compute_s + other.compute_s, self.weights_s + other.weights_s, self.kv_s + other.kv_s,
                    self.activations_s + other.activations_s, self.comm_s + other.comm_s,
                    self.overhead_s + other.overhead_s, self.flops + other.flops,
                    self.weight_bytes + other.weight_bytes, self.kv_bytes + other.kv_bytes,
                    self.activation_bytes + other.activation_bytes)

    def times(self, n: float) -> Cost:
        return Cost(self.compute_s * n, self.weights_s * n, self.kv_s * n, self.activations_s * n,
                    self.comm_s * n, self.overhead_s * n, self.flops * n, self.weight_bytes * n,
                    self.kv_bytes * n, self.activation_bytes * n)


@dataclass(frozen=True, slots=True)
class Gemm:
    """One (fused) weight matrix's per-GPU shard: ``out`` × ``inp``; for experts, one expert's shard."""

    name: str
    out: int
    inp: int
    expert: bool
    bytes_per_weight: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerPlan:
    """One distinct layer's per-GPU kernels and attention sizes."""

    layer: Layer
    gemms: tuple[Gemm, ...]
    bytes_per_weight: float
    heads: float  # query heads per GPU
    kv_heads: int
    qk_dim: int
    v_dim: int
    absorbed_dims: tuple[int, int] | None  # MLA latent cache: (kv_lora + rope, kv_lora) for decode
    kv_bytes_per_token: float  # this layer, this GPU
    stream_elements_per_token: float
    num_experts: int = 0
    top_k: float = 0  # real experts per token: num_experts_per_tok, fewer with zero-computation experts
    local_experts: int = 0
    state_bytes: float = 0.0  # one sequence's Mamba state in this layer on this GPU (0 for attention layers)
    index_bytes_per_token: float = 0.0  # DeepSeek-V3.2's index key (part of kv_bytes_per_token), this layer


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """Where the weights live: the last ``gpu_layers`` blocks on the GPU (llama.cpp -ngl), the rest on the host;
    ``gpu_counts`` / ``host_counts`` say how many of each planned layer sit on either side."""

    weights: WeightBytes
    gpu_layers: int
    gpu_counts: tuple[int, ...]
    host_counts: tuple[int, ...]
    head_on_gpu: bool = True


def place(spec: ModelSpec, plans: tuple[LayerPlan, ...], weights: WeightBytes, gpu_layers: int | None) -> Placement:
    """Split the planned layers between GPU and host (all on the GPU when ``gpu_layers`` is None)."""
    on_gpu = spec.num_layers if gpu_layers is None else min(gpu_layers, spec.num_layers)
    index = {id(p.layer): i for i, p in enumerate(plans)}
    gpu, host = [0] * len(plans), [0] * len(plans)
    for position, layer in enumerate(spec.layers):
        side = host if position < spec.num_layers - on_gpu else gpu
        side[index[id(layer)]] += 1
    return Placement(weights=weights, gpu_layers=on_gpu, gpu_counts=tuple(gpu), host_counts=tuple(host),
                     head_on_gpu=gpu_layers is None or gpu_layers > spec.num_layers)


def compute_format(fmt: NumberFormat, accelerator: Accelerator) -> str:
    """The format the GEMMs run in: the format's own (fp8, int8 W8A8, fp16 for W4A16) where the accelerator
    has it, else bf16/fp16/fp32 (weights are then dequantized to it, e.g. fp8 Marlin on A100)."""
    for name in (fmt.compute_format, "bf16", "fp16", "fp32"):
        if name in accelerator.peak_flops_per_s:
            return name
    raise SpecError(f"{accelerator.name} lists no dense throughput for {fmt.compute_format}, bf16, fp16 or fp32",
                    key="error.core.no_dense_throughput", fields={"gpu": accelerator.name, "fmt": fmt.compute_format})


def dequantizes(fmt: NumberFormat, accelerator: Accelerator) -> bool:
    """Weight-only formats (int4, GPTQ, AWQ, NF4, GGUF) and formats the accelerator cannot compute in are
    unpacked in the GEMM kernel: their weight reads run at ``quantized_weight_bandwidth_fraction``."""
    weight_only = fmt.family in WEIGHT_ONLY_FAMILIES or (fmt.family is Family.INTEGER and fmt.bits_per_element < 8)
    return weight_only or fmt.compute_format not in accelerator.peak_flops_per_s


def layer_gemms(layer: Layer, h: int, tp: int, ep: int, r: float) -> tuple[tuple[Gemm, ...], float]:
    """Fused per-GPU GEMMs of a layer, and the linear parameters this GPU holds for it."""
    fused: dict[tuple[str, bool], list[int]] = {}
    params = 0.0
    for w in block_linears(layer, h):
        count, out, inp = linear_shard(w, layer, tp, ep)
        params += out * inp * count
        key = (FUSED_GEMMS.get(w.role, w.role), w.expert)
        prior = fused.setdefault(key, [0, inp])
        prior[0] += out
    gemms = [Gemm(name=name, out=o, inp=i, expert=expert, bytes_per_weight=r)
             for (name, expert), (o, i) in fused.items()]
    if isinstance(layer.ffn, Moe):
        scored = layer.ffn.num_experts + layer.ffn.zero_experts  # the router also scores zero-computation experts
        gemms.append(Gemm(name="router", out=scored, inp=h, expert=False, bytes_per_weight=ACT_BYTES))
    return tuple(gemms), params


def stream_elements(layer: Layer, h: int, tp: int) -> float:
    a, ffn = layer.attention, layer.ffn
    rope = (a.num_heads + kv_heads_per_rank(a, tp) * tp) * a.head_dim / tp * 2 if a is not None else 0.0
    if ffn is None:
        width = 0.0
    elif isinstance(ffn, Moe):
        width = ffn.experts_per_token * ffn.expert.intermediate_size * (2 if ffn.expert.gated else 1) / max(1, tp)
    else:
        width = ffn.intermediate_size * (2 if ffn.gated else 1) / tp
    return 4 * h + 6 * h + rope + 1.5 * width


def plan_layers(spec: ModelSpec, weights: WeightBytes, weights_format: NumberFormat, kv_format: NumberFormat, *,
                tp: int, ep: int, mla: MlaCache) -> tuple[LayerPlan, ...]:
    """Each distinct layer's per-GPU kernels; r = the format's linear bytes / linear parameters per GPU."""
    h = spec.hidden_size
    groups = spec.layer_groups()
    sharded = [layer_gemms(layer, h, tp, ep, 1.0) for layer, _ in groups]
    params = sum(s[1] * count for s, (_, count) in zip(sharded, groups, strict=True))
    r = weights.linear_bytes / params if params else weights_format.bytes_per_param
    plans = []
    for (layer, _), (shards, _) in zip(groups, sharded, strict=True):
        a, ffn = layer.attention, layer.ffn
        gemms = tuple(g if g.name == "router" else Gemm(g.name, g.out, g.inp, g.expert, r) for g in shards)
        if a is None:
            plans.append(mixer_plan(spec, layer, gemms, r, tp, ep, h))
            continue
        absorbed = ((a.mla.kv_lora_rank + a.mla.qk_rope_head_dim, a.mla.kv_lora_rank)
                    if a.mla is not None and mla is MlaCache.LATENT else None)
        moe = ffn if isinstance(ffn, Moe) else None
        plans.append(LayerPlan(
            layer=layer, gemms=gemms, bytes_per_weight=r, heads=a.num_heads / tp,
            kv_heads=kv_heads_per_rank(a, tp), qk_dim=a.head_dim, v_dim=a.v_head_dim, absorbed_dims=absorbed,
            kv_bytes_per_token=kv_bytes_per_token_per_layer(a, kv_format=kv_format, tp=tp, mla=mla),
            stream_elements_per_token=stream_elements(layer, h, tp),
            num_experts=moe.num_experts if moe else 0, top_k=moe.experts_per_token if moe else 0,
            local_experts=moe.num_experts // ep if moe else 0,
            index_bytes_per_token=kv_vector_bits(kv_format, a.indexer.head_dim) / 8 if a.indexer else 0.0,
            state_bytes=state_bytes(spec, layer, tp)))  # Falcon-H1: Mamba beside attention
    return tuple(plans)


def mixer_plan(spec: ModelSpec, layer: Layer, gemms: tuple[Gemm, ...], r: float, tp: int, ep: int,
                h: int) -> LayerPlan:
    """A layer without attention: a Mamba mixer (state per sequence) or Nemotron-H's MLP-only block."""
    moe = layer.ffn if isinstance(layer.ffn, Moe) else None
    return LayerPlan(layer=layer, gemms=gemms, bytes_per_weight=r, heads=0.0, kv_heads=0, qk_dim=0, v_dim=0,
                     absorbed_dims=None, kv_bytes_per_token=0.0,
                     stream_elements_per_token=stream_elements(layer, h, tp),
                     num_experts=moe.num_experts if moe else 0, top_k=moe.experts_per_token if moe else 0,
                     local_experts=moe.num_experts // ep if moe else 0, state_bytes=state_bytes(spec, layer, tp))


def state_bytes(spec: ModelSpec, layer: Layer, tp: int) -> float:
    """One sequence's Mamba state in ``layer`` on one GPU, in the model's default cache format (0 without a mixer)."""
    if layer.mixer is None:
        return 0.0
    return ssm_state_bytes_per_layer(layer.mixer, state_format=default_kv_format(spec), tp=tp)
