"""The kernels of one serving forward pass on one GPU, and their roofline cost (used by ``inference_time``).

Per layer, for m = B·T new tokens on top of c₀ cached ones (shards as ``inference_memory`` stores them:
column/row splits over tp, K/V by KV heads, experts ep ways and each expert tp/ep ways)::

    GEMM        2·m·n·k FLOPs;  n·k·r weight bytes (r: bytes per weight of the format, scales included);
                m·(n + k)·2 activation bytes. q/k/v and gate/up run fused, as serving engines fuse them.
    experts     the m·top_k / ep token-expert assignments this GPU serves; weights of the experts hit,
                (E/ep)·(1 − (1 − k/E)^m) of them (``expected_distinct_experts``); plus ``moe_dispatch_kernels``
                launches (top-k, sort by expert, activation, weighted sum of the top-k outputs).
    attention   2·heads·(d + d_v) FLOPs per (query, key) pair, Σ_{i=1..T} min(c₀ + i, window) pairs a
                sequence (decode with an MLA latent cache: the absorbed form, d → kv_lora + rope, d_v →
                kv_lora); KV bytes B·cached(c₀ + T)·kv_bytes_per_token_per_layer + the m appended tokens.
    elementwise two norms, two residual adds, RoPE and the MLP activation, as memory-bound streams.
    TP          two all-reduces of m·h·2 bytes per layer. Expert parallelism here shares the TP group
                (ep divides tp, as the weights are sharded): tokens are already on every rank after the
                attention all-reduce and the MLP all-reduce combines the experts' outputs.

The output head runs on the sampled rows: final norm, the vocab-parallel GEMM, an all-gather of the fp32
logits across tp, and a softmax/sampling pass.

State-space (Mamba) layers replace the attention kernel by their scan: each step reads and writes every
sequence's fixed conv + SSM state (``kv_cache.ssm_state_bytes_per_layer``, booked as KV traffic) instead of a
cache growing with the context; FLOPs are the depthwise conv (2·conv_dim·K per token) and the scan, chunked
over a prefill (``flops.mamba2_scan_flops``; Mamba-1: 2·I·N per token) and recurrent in decode (state
update and read-out, 4·H·P·N per token: Dao & Gu 2024, arXiv:2405.21060 §3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from suanli.core.comms import Collective, collective_time_s, path_for_group
from suanli.core.flops import (
    gated_deltanet_scan_flops,
    kimi_delta_scan_flops,
    lightning_scan_flops,
    mamba2_scan_flops,
)
from suanli.core.kv_cache import (
    cached_tokens,
)
from suanli.core.roofline import gemm_efficiency
from suanli.core.serving_plan import (
    ACT_BYTES,
    BF16_FORMAT,
    NARROW_FORMATS,
    OFFLOAD_MIN_TOKENS,
    STREAM_KERNELS,
    TILE_ROWS,
)
from suanli.core.serving_plan import (
    Cost as Cost,
)
from suanli.core.serving_plan import (
    Gemm as Gemm,
)
from suanli.core.serving_plan import (
    LayerPlan as LayerPlan,
)
from suanli.core.serving_plan import (
    Placement as Placement,
)
from suanli.core.serving_plan import (
    Rows as Rows,
)
from suanli.core.serving_plan import (
    compute_format as compute_format,
)
from suanli.core.serving_plan import (
    dequantizes as dequantizes,
)
from suanli.core.serving_plan import (
    place as place,
)
from suanli.core.serving_plan import (
    plan_layers as plan_layers,
)
from suanli.quantity import plain
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.hardware import Accelerator
from suanli.spec.model import (
    GatedDeltaNet,
    KimiDeltaAttention,
    Layer,
    LightningAttention,
    Mamba2Mixer,
    ModelSpec,
    ShortConv,
)
from suanli.spec.precision import Family, NumberFormat


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """The roofs a kernel runs against."""

    peak_flops_per_s: float  # GEMM format
    attention_flops_per_s: float  # 16-bit
    bandwidth_bytes_per_s: float  # × decode_bandwidth_fraction
    weight_bandwidth_bytes_per_s: float  # × quantized factor where the format dequantizes
    launch_s: float
    gemm_latency_s: float = 0.0  # per weight GEMM beyond its roofline (block-scaled fp8)


def block_scaled(fmt: NumberFormat, accelerator: Accelerator) -> bool:
    """8-bit float weights with a scale per block (DeepSeek-V3's 128×128), run as fp8 GEMMs that apply the
    weight-block and activation-group scales in their main loop (``block_scaled_gemm_*`` assumptions)."""
    return (fmt.family is Family.FLOAT and fmt.bits_per_element == 8 and fmt.block_size > 1
            and compute_format(fmt, accelerator) == fmt.compute_format)


def device(acc: Accelerator, fmt: NumberFormat, a: PerformanceAssumptions, launch_s: float,
           bandwidth: float | None = None) -> Device:
    """The roofs of ``fmt``'s GEMMs on ``acc``. Block-scaled fp8 runs at ``block_scaled_gemm_peak_fraction``
    of the fp8 peak (in place of ``gemm_peak_fraction`` × ``low_precision_gemm_ratio``; ``tiled_efficiency``
    multiplies by ``gemm_peak_fraction`` again) and each of its GEMMs takes ``block_scaled_gemm_latency_s``."""
    bw = (bandwidth or acc.memory_bandwidth_bytes_per_s) * a.decode_bandwidth_fraction
    q = a.quantized_weight_bandwidth_fraction if dequantizes(fmt, acc) else 1.0
    gemm_format = compute_format(fmt, acc)
    narrow = a.low_precision_gemm_ratio if gemm_format in NARROW_FORMATS else 1.0
    latency = 0.0
    if block_scaled(fmt, acc):
        narrow, latency = a.block_scaled_gemm_peak_fraction / a.gemm_peak_fraction, a.block_scaled_gemm_latency_s
    return Device(peak_flops_per_s=acc.peak_flops(gemm_format) * narrow,
                  attention_flops_per_s=acc.peak_flops(compute_format(BF16_FORMAT, acc)),
                  bandwidth_bytes_per_s=bw, weight_bandwidth_bytes_per_s=bw * q, launch_s=launch_s,
                  gemm_latency_s=latency)


def kernel(d: Device, *, compute_s: float, flops: float, weight_bytes: float = 0.0, kv_bytes: float = 0.0,
           activation_bytes: float = 0.0, kernels: int = 1) -> Cost:
    """Roofline of one kernel: the larger of its compute and memory times, booked to what bounds it."""
    w = weight_bytes / d.weight_bandwidth_bytes_per_s
    kv = kv_bytes / d.bandwidth_bytes_per_s
    act = activation_bytes / d.bandwidth_bytes_per_s
    overhead = d.launch_s * kernels
    if compute_s >= w + kv + act:
        return Cost(compute_s=compute_s, overhead_s=overhead, flops=flops)
    return Cost(weights_s=w, kv_s=kv, activations_s=act, overhead_s=overhead, flops=flops, weight_bytes=weight_bytes,
                kv_bytes=kv_bytes, activation_bytes=activation_bytes)


def expected_distinct_experts(num_experts: int, top_k: float, tokens: float) -> float:
    """Experts some token picks when ``tokens`` tokens each pick ``top_k`` of ``num_experts`` uniformly:
    E·(1 − (1 − k/E)^tokens). One token misses a given expert with probability 1 − k/E (it picks k distinct
    experts); tokens route independently: the classic occupancy expectation (Feller 1968, An Introduction to
    Probability Theory I, §II.5). 1 token hits k experts; the union tends to all E as the batch grows."""
    if tokens <= 0:
        return 0.0
    return float(num_experts * (1 - (1 - top_k / num_experts) ** tokens))


def tiled_efficiency(rows: float, weights: float, a: PerformanceAssumptions, *, whole_tiles: bool = True) -> float:
    """GEMM efficiency per useful FLOP for ``rows`` × a ``weights``-element matrix: the efficiency curve taken
    at no fewer than ``TILE_ROWS`` rows, since kernels tile the rows (a 1-row decode GEMV is no less
    efficient per FLOP than a 64-row GEMM, whose extra rows ride on the same weight fetch). Above one tile the
    rows still come in whole tiles: M rows cost ⌈M/64⌉·64 rows of tensor-core work, so the efficiency per
    useful FLOP is scaled by M / (⌈M/64⌉·64) (a 197-row decode batch does the work of 256 rows, 77%; 64 rows is
    the smallest row tile of the Hopper/Ampere GEMM kernels that autotuners choose among, so this is the least
    padding). ``whole_tiles`` False for grouped expert GEMMs, whose rows are spread over experts (per-expert
    padding is not modelled)."""
    efficiency = gemm_efficiency(2 * max(rows, TILE_ROWS) * weights, a)
    if whole_tiles and rows > TILE_ROWS:
        efficiency *= rows / (math.ceil(rows / TILE_ROWS) * TILE_ROWS)
    return efficiency


def _gemm_cost(g: Gemm, plan: LayerPlan, m: float, d: Device, a: PerformanceAssumptions) -> Cost:
    if g.expert:
        rows = busiest_rank_rows(m * plan.top_k, plan.num_experts // max(plan.local_experts, 1))
        hit = plan.local_experts / plan.num_experts * expected_distinct_experts(plan.num_experts, plan.top_k, m)
    else:
        rows, hit = m, 1.0
    flops = 2 * rows * g.out * g.inp
    compute = flops / (d.peak_flops_per_s * tiled_efficiency(rows, g.out * g.inp, a, whole_tiles=not g.expert)) \
        if flops else 0.0
    cost = kernel(d, compute_s=compute, flops=flops, weight_bytes=hit * g.out * g.inp * g.bytes_per_weight,
                  activation_bytes=rows * (g.out + g.inp) * ACT_BYTES)
    latency = d.gemm_latency_s if flops and g.name != "router" else 0.0  # the router GEMM runs in bf16
    return cost + Cost(overhead_s=latency) if latency else cost


def busiest_rank_rows(assignments: float, ranks: int) -> float:
    """Token-expert assignments on the busiest of ``ranks`` expert-parallel ranks, which sets the step: each of
    the ``assignments`` (m·top_k) lands on a given rank with probability 1/ranks (uniform routing), so a rank's
    count is Binomial(n, 1/r), mean n/r and σ = √(n·(1/r)(1 − 1/r)); the expected largest of r such counts is
    about mean + σ·√(2 ln r) (the normal approximation of the maximum of r draws; Gumbel 1958, Statistics of
    Extremes §3). One rank (no EP) is the mean exactly; at large batches the excess vanishes relative to the
    mean (σ grows as √n). Real routers are less uniform than this, so it is a lower bound on the imbalance."""
    if ranks <= 1:
        return assignments
    mean = assignments / ranks
    sigma = math.sqrt(assignments * (1 / ranks) * (1 - 1 / ranks))
    return min(assignments, mean + sigma * math.sqrt(2 * math.log(ranks)))


def attended_pairs(context: float, new_tokens: int, window: int | None) -> float:
    """Σ_{i=1..T} min(c₀ + i, W): (query, key) pairs of T new tokens after c₀ cached ones."""
    end = context + new_tokens
    if window is None or window >= end:
        return new_tokens * context + new_tokens * (new_tokens + 1) / 2
    full = max(0, end - max(context, window))  # queries at positions > W attend W keys
    ramp_end = min(end, window)
    ramp = max(0, ramp_end - context)
    return full * window + ramp * (context + ramp_end + 1) / 2


def mixer_core_flops(layer: Layer, new_tokens: int, tp: int) -> float:
    """Conv + scan FLOPs of one sequence's ``new_tokens`` tokens in a Mamba layer on one GPU (module
    docstring): chunked scan for a prefill, the recurrent step (4·H·P·N; Mamba-1 4·I·N) in decode."""
    m = layer.mixer
    if m is None:
        return 0.0
    if isinstance(m, Mamba2Mixer):
        conv = 2.0 * m.conv_dim * m.conv_kernel * new_tokens
        step = 4.0 * m.num_heads * m.head_dim * m.d_state
        scan = step if new_tokens == 1 else float(mamba2_scan_flops(m, new_tokens, plain))
    elif isinstance(m, GatedDeltaNet):  # decode: the delta-rule update and read-out, 6·Hv·dk·dv per token
        conv = 2.0 * m.conv_dim * m.conv_kernel * new_tokens
        step = 6.0 * m.num_v_heads * m.head_k_dim * m.head_v_dim
        scan = step if new_tokens == 1 else float(gated_deltanet_scan_flops(m, new_tokens, plain))
    elif isinstance(m, KimiDeltaAttention):  # decode: the same delta-rule update and read-out, 6·H·d² per token
        conv = 2.0 * m.conv_dim * m.conv_kernel * new_tokens
        step = 6.0 * m.num_heads * m.head_dim * m.head_dim
        scan = step if new_tokens == 1 else float(kimi_delta_scan_flops(m, new_tokens, plain))
    elif isinstance(m, ShortConv):  # LFM2: the conv only
        conv, scan = 2.0 * m.channels * m.conv_kernel * new_tokens, 0.0
    elif isinstance(m, LightningAttention):  # decode: the Kᵀ·V write and the Q·S read, 4·H·d² per token
        step = 4.0 * m.num_heads * m.head_dim * m.head_dim
        conv, scan = 0.0, step if new_tokens == 1 else float(lightning_scan_flops(m, new_tokens, plain))
    else:
        conv = 2.0 * m.intermediate_size * m.conv_kernel * new_tokens
        scan = (4.0 if new_tokens == 1 else 2.0) * m.intermediate_size * m.d_state * new_tokens
    return (conv + scan) / tp


def _mixer_cost(plan: LayerPlan, rows: Rows, d: Device, a: PerformanceAssumptions, tp: int) -> Cost:
    """A Mamba layer's conv + scan: compute at the 16-bit roof, each sequence's state read and written once."""
    flops = sum(batch * mixer_core_flops(plan.layer, new_tokens, tp) for batch, new_tokens, _ in rows)
    sequences = sum(batch for batch, _, _ in rows)
    return kernel(d, compute_s=flops / (d.attention_flops_per_s * a.attention_peak_fraction), flops=flops,
                  kv_bytes=2 * sequences * plan.state_bytes)


def _attention_cost(plan: LayerPlan, rows: Rows, d: Device, a: PerformanceAssumptions) -> Cost:
    """One attention kernel over every row group of the step (a varlen kernel serves a mixed batch at once).

    DeepSeek-V3.2's sparse attention reads only the top-k selected latents per query, while its lightning
    indexer scores every cached index key, 2·H_i·(d_i + 1) FLOPs per pair, on every TP rank (vLLM and SGLang
    replicate it), counted here at the 16-bit attention rate (DeepGEMM's FP8 logits kernel runs faster)."""
    attention = plan.layer.attention
    if attention is None:
        return Cost()
    indexer = attention.indexer
    # chunked attention: at most a chunk of keys, like a window; DeepSeek sparse attention: its top-k keys
    window = attention.local_span if indexer is None else indexer.topk
    flops = kv_bytes = m = 0.0
    for batch, new_tokens, context in rows:
        qk, v = plan.absorbed_dims if plan.absorbed_dims and new_tokens == 1 else (plan.qk_dim, plan.v_dim)
        flops += 2 * plan.heads * (qk + v) * batch * attended_pairs(context, new_tokens, window)
        cached = batch * cached_tokens(attention, context + new_tokens) + batch * new_tokens
        kv_bytes += cached * plan.kv_bytes_per_token
        if indexer is not None:  # all index keys are read and scored; only the selected latents are read
            flops += 2 * indexer.num_heads * (indexer.head_dim + 1) * batch * attended_pairs(context, new_tokens,
                                                                                             None)
            selected = batch * min(context + new_tokens, indexer.topk) + batch * new_tokens
            kv_bytes += (selected - cached) * (plan.kv_bytes_per_token - plan.index_bytes_per_token)
        m += batch * new_tokens
    return kernel(d, compute_s=flops / (d.attention_flops_per_s * a.attention_peak_fraction), flops=flops,
                  kv_bytes=kv_bytes, activation_bytes=m * plan.heads * (plan.qk_dim + plan.v_dim) * ACT_BYTES)


def token_kernels_cost(plan: LayerPlan, spec: ModelSpec, acc: Accelerator, a: PerformanceAssumptions, *,
                       tokens: float, tp: int, d: Device) -> Cost:
    """The kernels of one layer that see only the step's token count: GEMMs, elementwise streams and the TP
    all-reduces (the rows' contexts do not matter to them)."""
    cost = Cost()
    for g in plan.gemms:
        cost = cost + _gemm_cost(g, plan, tokens, d, a)
    streams = tokens * plan.stream_elements_per_token * ACT_BYTES
    cost = cost + kernel(d, compute_s=0.0, flops=0.0, activation_bytes=streams, kernels=STREAM_KERNELS)
    if plan.num_experts and tokens:  # top-k, sort by expert, activation, weighted sum (``moe_dispatch_kernels``)
        cost = cost + Cost(overhead_s=d.launch_s * a.moe_dispatch_kernels)
    if tp > 1:
        cost = cost + Cost(comm_s=2 * all_reduce_s(tokens * spec.hidden_size * ACT_BYTES, tp, acc, a))
    return cost


def context_kernels_cost(plan: LayerPlan, rows: Rows, d: Device, a: PerformanceAssumptions, tp: int) -> Cost:
    """The kernels of one layer that depend on each row's context: attention, or a Mamba layer's scan."""
    cost = _attention_cost(plan, rows, d, a)
    if plan.layer.mixer is not None:
        cost = cost + _mixer_cost(plan, rows, d, a, tp)
    return cost


def layer_cost(plan: LayerPlan, spec: ModelSpec, acc: Accelerator, a: PerformanceAssumptions, *, rows: Rows,
               tp: int, d: Device) -> Cost:
    """One layer on one GPU for a step over ``rows``: GEMMs, attention (or scan), streams, TP all-reduces."""
    tokens = sum(batch * new_tokens for batch, new_tokens, _ in rows)
    return context_kernels_cost(plan, rows, d, a, tp) + token_kernels_cost(plan, spec, acc, a, tokens=tokens, tp=tp,
                                                                           d=d)


def all_reduce_s(nbytes: float, group: int, acc: Accelerator, a: PerformanceAssumptions) -> float:
    """One all-reduce: the better of ring and tree (NCCL picks by size) plus the fixed collective cost."""
    path = path_for_group(acc, group)
    ring = collective_time_s(Collective.ALL_REDUCE, nbytes, group, path, a)
    tree = collective_time_s(Collective.ALL_REDUCE, nbytes, group, path, a, tree=True)
    return min(ring, tree) + a.collective_overhead_s


def embedding_cost(spec: ModelSpec, tokens: float, d: Device) -> Cost:
    """The embedding lookup: one row read and one written per new token."""
    return kernel(d, compute_s=0.0, flops=0.0, activation_bytes=2 * tokens * spec.hidden_size * ACT_BYTES)


def step_forward_cost(plans: tuple[LayerPlan, ...], spec: ModelSpec, acc: Accelerator, a: PerformanceAssumptions, *,
                      rows: Rows, tp: int, ep: int, launch_s: float, placement: Placement,
                      weights_format: NumberFormat, host: Accelerator | None) -> Cost:
    """Every layer's cost for one engine step over ``rows`` — (sequences, new tokens each, cached context)
    groups, as a continuous-batching step mixes prefill chunks and decodes — (llama.cpp host layers at host
    bandwidth, or streamed to the GPU for big batches), plus the embedding lookup."""
    d = device(acc, weights_format, a, launch_s)
    m = sum(batch * new_tokens for batch, new_tokens, _ in rows)
    cost = embedding_cost(spec, m, d)
    for plan, count in zip(plans, placement.gpu_counts, strict=True):
        if count:
            cost = cost + layer_cost(plan, spec, acc, a, rows=rows, tp=tp, d=d).times(count)
    for plan, count in zip(plans, placement.host_counts, strict=True):
        if not count:
            continue
        if m >= OFFLOAD_MIN_TOKENS:  # weights cross the host link, the GPU computes
            link = acc.host_link.bandwidth_bytes_per_s if acc.host_link else a.host_memory_bandwidth_bytes_per_s
            layer_bytes = sum(g.out * g.inp * g.bytes_per_weight * (plan.local_experts or 1) if g.expert
                              else g.out * g.inp * g.bytes_per_weight for g in plan.gemms)
            moved = Cost(weights_s=layer_bytes / link, weight_bytes=layer_bytes)
            cost = cost + (layer_cost(plan, spec, acc, a, rows=rows, tp=tp, d=d) + moved).times(count)
        else:
            bw = host.memory_bandwidth_bytes_per_s if host else a.host_memory_bandwidth_bytes_per_s
            on_host = device(host or acc, weights_format, a, a.kernel_overhead_s, bandwidth=bw)
            if host is None:  # host compute unknown: bandwidth-bound only
                on_host = Device(peak_flops_per_s=math.inf, attention_flops_per_s=math.inf,
                                 bandwidth_bytes_per_s=on_host.bandwidth_bytes_per_s,
                                 weight_bandwidth_bytes_per_s=on_host.weight_bandwidth_bytes_per_s,
                                 launch_s=a.kernel_overhead_s)
            cost = cost + layer_cost(plan, spec, acc, a, rows=rows, tp=tp, d=on_host).times(count)
    return cost


def head_cost(spec: ModelSpec, acc: Accelerator, a: PerformanceAssumptions, *, rows: int, tp: int, launch_s: float,
              placement: Placement, host: Accelerator | None) -> Cost:
    """Final norm, output head GEMM on the sampled rows, logits all-gather across tp, softmax/sampling."""
    if not spec.lm_head:
        return Cost()
    h, vocab = spec.hidden_size, math.ceil(spec.vocab_size / tp)
    w = placement.weights
    head_bytes = w.lm_head_bytes or w.embedding_bytes or vocab * h * ACT_BYTES
    bf16 = Device(peak_flops_per_s=acc.peak_flops(compute_format(BF16_FORMAT, acc)), attention_flops_per_s=0.0,
                  bandwidth_bytes_per_s=acc.memory_bandwidth_bytes_per_s * a.decode_bandwidth_fraction,
                  weight_bandwidth_bytes_per_s=acc.memory_bandwidth_bytes_per_s * a.decode_bandwidth_fraction,
                  launch_s=launch_s)
    if not placement.head_on_gpu:
        bw = (host.memory_bandwidth_bytes_per_s if host else a.host_memory_bandwidth_bytes_per_s)
        bf16 = Device(peak_flops_per_s=math.inf, attention_flops_per_s=0.0,
                      bandwidth_bytes_per_s=bw * a.decode_bandwidth_fraction,
                      weight_bandwidth_bytes_per_s=bw * a.decode_bandwidth_fraction, launch_s=launch_s)
    flops = 2.0 * rows * vocab * h
    cost = kernel(bf16, compute_s=flops / (bf16.peak_flops_per_s * tiled_efficiency(rows, vocab * h, a)), flops=flops,
                  weight_bytes=head_bytes, activation_bytes=rows * (h + vocab) * ACT_BYTES)
    cost = cost + kernel(bf16, compute_s=0.0, flops=0.0, activation_bytes=rows * (2 * h * ACT_BYTES + 3 * vocab * 4.0),
                         kernels=2)
    if tp > 1:
        path = path_for_group(acc, tp)
        gather = collective_time_s(Collective.ALL_GATHER, rows * spec.vocab_size * 4.0, tp, path, a)
        cost = cost + Cost(comm_s=gather + a.collective_overhead_s)
    return cost

