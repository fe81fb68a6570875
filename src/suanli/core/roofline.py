"""Per-operation roofline: each op's time from its FLOPs and bytes against an accelerator's peaks.

    time(op) = max(flops / (peak · efficiency(op)), bytes / (bandwidth · memory_fraction)) + kernel_overhead

An op is compute-bound when its arithmetic intensity (FLOPs per byte moved) exceeds the accelerator's ridge
point (peak / bandwidth), memory-bound otherwise (Williams et al. 2009, "Roofline"). GEMM efficiency falls
for small problems, eff(F) = gemm_peak_fraction · F / (F + gemm_half_work_flops), a saturating curve with two
named, calibrated parameters (spec/assumptions.py); attention uses the FlashAttention fraction; norms,
activations, residual adds and the optimizer step are memory-bound streams.

``layer_ops`` lists one block's forward ops for ``tokens`` tokens on one GPU under tensor and expert
parallelism (the GEMM shapes are the per-rank shards); the backward pass runs each GEMM twice (input and
weight gradients) and each stream about twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from suanli.core.flops import attended_pairs, mixer_forward_flops
from suanli.core.params import mixer_params
from suanli.quantity import plain
from suanli.spec.assumptions import AttentionSpan, PerformanceAssumptions
from suanli.spec.hardware import Accelerator
from suanli.spec.model import (
    GatedDeltaNet,
    KimiDeltaAttention,
    Layer,
    LightningAttention,
    Mamba2Mixer,
    Mixer,
    Mlp,
    ModelSpec,
    Moe,
    ShortConv,
)


class OpKind(Enum):
    GEMM = "gemm"
    ATTENTION = "attention"
    STREAM = "stream"  # memory-bound elementwise / reduction


@dataclass(frozen=True, slots=True, kw_only=True)
class Op:
    """One kernel: its name, kind, FLOPs and bytes moved (reads + writes)."""

    name: str
    kind: OpKind
    flops: float
    bytes: float
    count: int = 1  # identical kernels (e.g. one per expert)

    @property
    def intensity_flops_per_byte(self) -> float:
        return self.flops / self.bytes if self.bytes else float("inf")


@dataclass(frozen=True, slots=True, kw_only=True)
class OpTime:
    """An op's time, and which roof bounds it."""

    op: Op
    compute_s: float
    memory_s: float
    time_s: float

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"


def gemm(name: str, m: float, n: float, k: float, dtype_bytes: float, count: int = 1) -> Op:
    """An (m×k)·(k×n) matmul: 2mnk FLOPs; reads both operands, writes the output."""
    return Op(name=name, kind=OpKind.GEMM, flops=2 * m * n * k, bytes=(m * k + k * n + m * n) * dtype_bytes,
              count=count)


def stream(name: str, elements: float, dtype_bytes: float, passes: float = 2.0) -> Op:
    """A memory-bound op touching ``elements`` values ``passes`` times (read + write = 2)."""
    return Op(name=name, kind=OpKind.STREAM, flops=elements, bytes=elements * dtype_bytes * passes)


def gemm_efficiency(flops: float, a: PerformanceAssumptions) -> float:
    """Achieved fraction of dense peak for a GEMM of ``flops``: peak_fraction · F / (F + half_work)."""
    return a.gemm_peak_fraction * flops / (flops + a.gemm_half_work_flops)


def op_time(op: Op, accelerator: Accelerator, compute_format: str, a: PerformanceAssumptions) -> OpTime:
    """The roofline time of ``op.count`` launches of ``op`` on one accelerator."""
    peak = accelerator.peak_flops(compute_format)
    if op.kind is OpKind.GEMM:
        compute = op.flops / (peak * gemm_efficiency(op.flops, a))
    elif op.kind is OpKind.ATTENTION:
        compute = op.flops / (peak * a.attention_peak_fraction)
    else:
        compute = 0.0  # streams are bound by memory; their few FLOPs run on vector units in its shadow
    memory = op.bytes / (accelerator.memory_bandwidth_bytes_per_s * a.memory_bandwidth_fraction)
    time = (max(compute, memory) + a.kernel_overhead_s) * op.count
    return OpTime(op=op, compute_s=compute * op.count, memory_s=memory * op.count, time_s=time)


def total_time_s(ops: Iterable[Op], accelerator: Accelerator, compute_format: str,
                 a: PerformanceAssumptions) -> float:
    return sum(op_time(op, accelerator, compute_format, a).time_s for op in ops)


def _mlp_gemms(prefix: str, mlp: Mlp, h: int, tokens: float, tp: int, b: float, count: int = 1) -> list[Op]:
    width = mlp.intermediate_size / tp
    up = gemm(f"{prefix}_up_gate" if mlp.gated else f"{prefix}_up", tokens, width * (2 if mlp.gated else 1), h, b,
              count)
    act = stream(f"{prefix}_activation", tokens * width * (2 if mlp.gated else 1), b, passes=1.5)
    return [up, Op(name=act.name, kind=act.kind, flops=act.flops, bytes=act.bytes * count),
            gemm(f"{prefix}_down", tokens, h, width, b, count)]


def _ffn_ops(layer: Layer, h: int, tokens: float, tp: int, ep: int, b: float) -> list[Op]:
    ffn = layer.ffn
    if ffn is None:
        return []
    if not isinstance(ffn, Moe):
        return _mlp_gemms("mlp", ffn, h, tokens, tp, b)
    local_experts = max(1, ffn.num_experts // ep)
    tokens_per_expert = tokens * ffn.experts_per_token / ffn.num_experts  # balanced routing
    ops = [gemm("router", tokens, ffn.num_experts + ffn.zero_experts, h, b)]
    ops += _mlp_gemms("expert", ffn.expert, h, tokens_per_expert * ep, tp, b, count=local_experts)
    if ffn.shared is not None:
        ops += _mlp_gemms("shared_expert", ffn.shared, h, tokens, tp, b)
    return ops


def _mixer_ops(m: Mixer, h: int, *, tokens: float, seq: int, tp: int, b: float) -> list[Op]:
    """A Mamba mixer: norm, in/out projections as one GEMM pair, the depthwise conv as a stream and the
    (chunked) scan as matmul work over its inputs and outputs (FLOPs from ``flops.mixer_forward_flops``)."""
    parts = mixer_forward_flops(m, h, seq, plain)
    sequences = tokens / seq
    projections = mixer_params(m, h, plain, matmul_only=True) / tp
    if isinstance(m, (Mamba2Mixer, GatedDeltaNet, KimiDeltaAttention)):  # the conv's channels: x, B, C; or q, k, v
        inner = float(m.conv_dim) / tp
    elif isinstance(m, ShortConv):
        inner = float(m.channels) / tp
    elif isinstance(m, LightningAttention):
        inner = 3.0 * m.num_heads * m.head_dim / tp
    else:
        inner = float(m.intermediate_size) / tp
    ops = [stream("norm_attn", tokens * h, b),
           Op(name="ssm_proj", kind=OpKind.GEMM, flops=2 * tokens * projections,
              bytes=(projections + tokens * (2 * h + 2 * inner)) * b),
           stream("ssm_conv", tokens * inner, b)]
    if "ssm_scan" in parts:  # LFM2's short conv has no scan
        ops.append(Op(name="ssm_scan", kind=OpKind.GEMM, flops=parts["ssm_scan"] * sequences / tp,
                      bytes=3 * tokens * inner * b))
    return [*ops, stream("residual_attn", tokens * h, b, passes=3)]


def layer_ops(layer: Layer, spec: ModelSpec, *, tokens: float, seq: int, tp: int = 1, ep: int = 1,
              dtype_bytes: float = 2.0, span: AttentionSpan = AttentionSpan.CAUSAL) -> list[Op]:
    """One block's forward kernels for ``tokens`` tokens (sequences of ``seq``) on one GPU."""
    a, h, b = layer.attention, spec.hidden_size, dtype_bytes
    if a is None:
        ops = _mixer_ops(layer.mixer, h, tokens=tokens, seq=seq, tp=tp, b=b) if layer.mixer is not None else []
        if layer.ffn is None:
            return ops
        ops.append(stream("norm_mlp", tokens * h, b))
        ops += _ffn_ops(layer, h, tokens, tp, ep, b)
        ops.append(stream("residual_mlp", tokens * h, b, passes=3))
        return ops
    heads = a.num_heads / tp
    kv_heads = max(1.0, a.num_kv_heads / tp)
    q_width, kv_width = heads * a.head_dim, kv_heads * a.head_dim
    pairs = attended_pairs(seq, a.local_span, span) * tokens / seq  # a chunk counted as a window: upper bound
    core_flops = 2 * heads * (a.head_dim + a.v_head_dim) * pairs
    core_bytes = tokens * (q_width + 2 * kv_width + heads * a.v_head_dim) * b
    ops = [stream("norm_attn", tokens * h, b),
           gemm("qkv", tokens, q_width + kv_width + kv_heads * a.v_head_dim, h, b),
           stream("rope", tokens * (q_width + kv_width), b),
           Op(name="attention", kind=OpKind.ATTENTION, flops=core_flops, bytes=core_bytes),
           gemm("out_proj", tokens, h, heads * a.v_head_dim, b),
           stream("residual_attn", tokens * h, b, passes=3),
           stream("norm_mlp", tokens * h, b)]
    if layer.mixer is not None:  # Falcon-H1: the Mamba heads beside attention, on the same normed input
        ops[5:5] = _mixer_ops(layer.mixer, h, tokens=tokens, seq=seq, tp=tp, b=b)[1:-1]
    ops += _ffn_ops(layer, h, tokens, tp, ep, b)
    ops.append(stream("residual_mlp", tokens * h, b, passes=3))
    return ops


def head_ops(spec: ModelSpec, *, tokens: float, tp: int = 1, dtype_bytes: float = 2.0) -> list[Op]:
    """Final norm, the output head's GEMM over ``tokens`` rows, and the softmax over the vocabulary."""
    if not spec.lm_head:
        return [stream("final_norm", tokens * spec.hidden_size, dtype_bytes)]
    vocab = spec.vocab_size / tp
    return [stream("final_norm", tokens * spec.hidden_size, dtype_bytes),
            gemm("lm_head", tokens, vocab, spec.hidden_size, dtype_bytes),
            stream("softmax", tokens * vocab, 4.0, passes=3)]
