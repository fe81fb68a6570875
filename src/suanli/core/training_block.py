"""One block's training step cost, for one micro-batch on one GPU: its kernels' roofline time forward and
backward, the recomputed part, and the tensor-, expert- and context-parallel communication it waits for.

- **kernels** (``block_kernels``): ``core/roofline.py``'s ops of the block at ``micro_batch · seq / cp`` tokens;
  a mixture of experts at the busiest rank's load plus the dispatcher's kernels (``core/moe_time.py``); eager
  attention as a batched GEMM over all S² scores plus its softmax (and, in eager Megatron-LM, the dropout
  kernel and the 1-byte masks of Korthikanti et al. 2022, arXiv:2205.05198 §4.1); sequence parallelism's norms
  and residual adds split ``tp`` ways; Transformer Engine's FP8 cast-transposes around each FP8 GEMM
  (``fp8_cast_op``).
- **backward**: each GEMM twice its forward (input and weight gradient; once for PEFT), each stream twice,
  FlashAttention's backward 2.5× (5 matmuls against 2, Dao 2023, arXiv:2307.08691 §3.1.2), eager attention's
  2×; unfused frameworks move ``unfused_elementwise_traffic`` times the bytes of an elementwise op.
- **recompute**: FULL repeats the forward, SELECTIVE the attention core.
- **tensor parallel**: 2 all-reduces of ``tokens·h`` forward, 2 backward, 2 more for a full recompute's
  forward, one more with sequence parallelism (the re-gathered norm outputs), on the critical path unless
  ``tp_comm_overlap`` pipelines them with the linears (``_overlapped_tp_s``).
- **context parallel**: ring attention's cp − 1 K/V hops per pass, hidden behind that pass's attention.

The first stage adds the embedding (``embedding_cost``), the last the output head and loss (``head_cost``).

- **eager dispatch on a CPU** (``eager_dispatch_s``): transformers' modules (frameworks hf, deepspeed, fsdp) make
  ``eager_training_ops_per_layer`` operator calls per block and ``eager_training_ops_fixed`` per step (counted
  with torch.profiler), where the kernels above charge ``kernel_overhead_s`` Σ count·(1 + backward factor)
  times; on a CPU accelerator every counted call costs ``eager_call_overhead_s`` instead. On a GPU the host
  queues kernels asynchronously and their dispatch hides behind the device's work (the published runs' fitted
  efficiencies hold what does not), so GPU predictions do not get this term.
``core/training_time.py`` sums these over the pipeline stages; split out of it.
"""

from __future__ import annotations

from suanli.core.activation_setup import DEFAULT_DROPOUT, Flavour
from suanli.core.comms import Collective, collective_time_s
from suanli.core.moe_time import PERMUTATION_OPS, ep_comm_s, imbalanced, moe_dispatch_ops
from suanli.core.roofline import Op, OpKind, head_ops, layer_ops, op_time, stream
from suanli.core.training_sync import StepCost, StepSetup, overlapped_s
from suanli.spec.layout import AttentionImpl, Recompute
from suanli.spec.model import Layer, Moe
from suanli.spec.training import Framework

BACKWARD_STREAM = 2.0  # a gradient stream reads the saved input and the incoming gradient, writes one
BACKWARD_FLASH_ATTENTION = 2.5  # FlashAttention-2 backward: 5 matmuls against the forward's 2 (Dao 2023 §3.1.2)
BACKWARD_EAGER_ATTENTION = 2.0  # eager attention: two batched matmuls per forward one
DROPOUT_MASK_BYTES = 1.0  # torch's native_dropout keeps a bool mask (Korthikanti et al. 2022 §4.1: "as²b" bytes)
_SP_STREAMS = frozenset({"norm_attn", "residual_attn", "norm_mlp", "residual_mlp"})
_TRANSFORMERS_FRAMEWORKS = frozenset({Framework.HF, Framework.DEEPSPEED, Framework.FSDP})  # transformers' modules


def block_kernels(layer: Layer, s: StepSetup) -> list[Op]:
    """The block's forward kernels. Eager attention is a batched GEMM plus a softmax over the scores; sequence
    parallelism splits the norms and residual adds ``tp`` ways; FP8 GEMMs add TE's casts (``fp8_cast_op``)."""
    ops = layer_ops(layer, s.spec, tokens=s.tokens, seq=s.job.seq, tp=s.layout.tp, ep=s.layout.ep,
                    dtype_bytes=s.act_bytes, span=s.span)
    out = []
    if isinstance(layer.ffn, Moe):  # the busiest rank's experts, then the dispatcher's own kernels (core/moe_time.py)
        ops = [imbalanced(op, s) for op in ops] + moe_dispatch_ops(layer.ffn, s)
    for op in ops:
        if op.kind is OpKind.ATTENTION and s.job.attention is AttentionImpl.EAGER and layer.attention is not None:
            scores = op.flops / (2 * (layer.attention.head_dim + layer.attention.v_head_dim))  # heads × pairs
            scores_bytes = 2 * scores * s.act_bytes  # written by the first matmul, read by the second
            out.append(Op(name="attention", kind=OpKind.GEMM, flops=op.flops, bytes=op.bytes + scores_bytes))
            out.append(stream("attention_softmax", scores, s.act_bytes))
            if _eager_dropout(s):
                out.append(Op(name="attention_dropout", kind=OpKind.STREAM, flops=scores,
                              bytes=scores * (2 * s.act_bytes + DROPOUT_MASK_BYTES)))
        elif op.name.startswith("residual_") and _eager_dropout(s):  # bias-dropout-add also writes its mask
            shard = s.layout.tp if s.layout.sp and s.layout.tp > 1 else 1
            out.append(Op(name=op.name, kind=op.kind, flops=op.flops / shard,
                          bytes=(op.bytes + op.flops * DROPOUT_MASK_BYTES) / shard))
        elif op.name in _SP_STREAMS and s.layout.sp and s.layout.tp > 1:
            out.append(Op(name=op.name, kind=op.kind, flops=op.flops / s.layout.tp, bytes=op.bytes / s.layout.tp))
        else:
            out.append(op)
            if op.kind is OpKind.GEMM and s.gemm_format == "fp8":
                out.append(fp8_cast_op(op, _gemm_rows(op, layer, s), s))
    return out


def _gemm_rows(op: Op, layer: Layer, s: StepSetup) -> float:
    """Rows (tokens) of one launch of a block's GEMM: the micro-batch's tokens on this GPU, or for a routed
    expert its balanced share of the expert-parallel group's routed tokens (``core/roofline.py``)."""
    ffn = layer.ffn
    if op.name.startswith("expert_") and isinstance(ffn, Moe):
        return s.tokens * ffn.experts_per_token / ffn.num_experts * s.layout.ep
    return s.tokens


def fp8_cast_op(gemm_op: Op, rows: float, s: StepSetup) -> Op:
    """Transformer Engine's casts around one FP8 linear, per micro-batch, forward and backward together
    (``_backward_factor`` gives it 1.0, the bytes here being the forward's half of the total).

    An m×k by k×n linear on Hopper (TE ``module/linear.py``, delayed scaling, the default recipe): forward, one
    fused cast-transpose of the bf16 input (read 2 bytes, write the fp8 copy and its fp8 transpose, which the
    weight gradient needs: 4·m·k bytes); backward, the same for the output gradient (4·m·n); the weight is
    cast and transposed once per optimizer step, not per micro-batch (``is_first_microbatch``: 4·k·n over the
    step's micro-batches). The GEMMs write bf16 outputs (counted in the GEMM's own bytes). With m rows and the
    GEMM's bytes (m·k + k·n + m·n)·b and FLOPs 2·m·n·k: k·n = FLOPs / 2m and m·k + m·n = bytes / b − k·n.
    Left out: the amax all-reduce (a few KB per step, one latency) and, with current scaling (NeMo's
    FP8-CS), the amax pass over each tensor before its cast (2 more bytes per element read)."""
    weight = gemm_op.flops / (2 * rows)
    activations = max(0.0, gemm_op.bytes / s.act_bytes - weight)
    total = 4 * activations + 4 * weight / s.layout.grad_accumulation_steps
    return Op(name=f"{gemm_op.name}_fp8_cast", kind=OpKind.STREAM, flops=0.0, bytes=total / 2, count=gemm_op.count)


def _eager_dropout(s: StepSetup) -> bool:
    """Whether the step pays for dropout's own kernels: Megatron-LM's GPT recipes of the eager-attention era
    (Korthikanti et al. 2022: attention and hidden dropout 0.1, ``core/activation_setup.DEFAULT_DROPOUT``) ran
    attention dropout as a kernel over the S² scores (read the probabilities, write the kept ones and a 1-byte
    mask; its backward reads the gradient and the mask, writes the gradient: the same bytes) and wrote a 1-byte
    mask in each bias-dropout-add. FlashAttention draws its dropout inside the kernel (no score traffic), and
    today's Megatron-Core Llama/Qwen/MoE recipes set dropout to 0."""
    return s.fused and s.job.attention is AttentionImpl.EAGER and DEFAULT_DROPOUT[Flavour.MEGATRON] > 0


def _op_s(op: Op, s: StepSetup) -> float:
    """An op's roofline time; unfused frameworks move ``stream_factor`` times the bytes of an elementwise op."""
    if op.kind is OpKind.GEMM and op.name != "attention":
        return op_time(op, s.accelerator, s.gemm_format, s.gemm_a).time_s
    # the loss stays one fp32 kernel (often a fused cross-entropy) and FP8 casts are fused Transformer Engine ones
    if op.kind is OpKind.STREAM and s.stream_factor != 1.0 and not (op.name == "softmax" or op.name.endswith("_cast")):
        op = Op(name=op.name, kind=op.kind, flops=op.flops, bytes=op.bytes * s.stream_factor, count=op.count)
    return op_time(op, s.accelerator, s.other_format, s.a).time_s


def _backward_factor(op: Op, s: StepSetup) -> float:
    if op.name.endswith("_fp8_cast"):
        return 1.0  # the output gradient's cast-transpose: ``fp8_cast_op`` splits its bytes evenly
    if op.name == "attention_dropout" or op.name in PERMUTATION_OPS:
        return 1.0  # read the gradient and the mask, write the gradient: the forward's bytes
    if op.name in ("attention", "attention_softmax"):
        return BACKWARD_EAGER_ATTENTION if s.job.attention is AttentionImpl.EAGER else BACKWARD_FLASH_ATTENTION
    if op.kind is OpKind.GEMM:
        return 1.0 if s.job.is_peft else 2.0
    return BACKWARD_STREAM


def layer_cost(layer: Layer, s: StepSetup) -> StepCost:
    """One block, one micro-batch: compute, recompute and the TP/EP/CP communication it waits for."""
    forward = backward = attention = linears = 0.0
    kernels = block_kernels(layer, s)
    for op in kernels:
        t = _op_s(op, s)
        forward += t
        backward += t * _backward_factor(op, s)
        if op.name in ("attention", "attention_softmax", "attention_dropout"):
            attention += t
        elif op.kind is OpKind.GEMM and not op.name.startswith(("expert_", "router")):
            linears += t  # the tensor-parallel linears a TP collective can overlap with
    backward += eager_dispatch_s(s.a.eager_training_ops_per_layer, charged_launches(kernels, s), s)
    lay = s.layout
    full = lay.recompute is Recompute.FULL
    recompute = forward if full else attention if lay.recompute is Recompute.SELECTIVE else 0.0
    all_reduce = collective_time_s(Collective.ALL_REDUCE, s.tokens * s.spec.hidden_size * s.act_bytes, lay.tp,
                                   s.path(lay.tp), s.a)
    # forward, backward, the recomputed forward; sequence parallelism keeps the norm outputs sharded and
    # gathers them again in backward for the weight gradients (two all-gathers = one all-reduce's bytes)
    tp_s = all_reduce * (2 * (3 if full else 2) + (1 if lay.sp else 0))
    if s.job.tp_comm_overlap and lay.sp and lay.tp > 1:
        tp_s = _overlapped_tp_s(s, all_reduce, linears, full)
    ep_s = ep_comm_s(layer.ffn, s, 3 if full else 2) if isinstance(layer.ffn, Moe) else 0.0
    return StepCost(forward, backward, recompute, tp_s, ep_s, _cp_exposed_s(layer, s, attention, full))


def _overlapped_tp_s(s: StepSetup, all_reduce_s: float, linears_s: float, full: bool) -> float:
    """Megatron-Core's ``tp_comm_overlap`` (Transformer Engine userbuffers, with sequence parallelism): each
    all-gather before a column-parallel linear and each reduce-scatter after a row-parallel one is split into
    ``tp`` chunks pipelined with the GEMM's chunks (Wang et al. 2023, "Overlap Communication with Dependent
    Computation via Decomposition", ASPLOS '23; TE ``comm_gemm_overlap``), and backward's re-gather of the
    input for the weight gradient runs in bulk beside the input-gradient GEMM. A pass then exposes its first
    chunk (1/tp of its communication) plus what outlasts the linears' GEMMs, and the hidden rest still costs
    ``overlapped_comm_slowdown`` (the communication kernels share SMs and HBM with the GEMMs). Per pass, in
    all-reduce equivalents: forward 2 (an all-gather and a reduce-scatter per sublayer) over the forward linears,
    backward 3 (with the re-gather) over twice their time, a full recompute's forward again 2."""
    tp = s.layout.tp
    passes = [(2 * all_reduce_s, linears_s), (3 * all_reduce_s, 2 * linears_s)]
    if full:
        passes.append((2 * all_reduce_s, linears_s))
    return sum(comm / tp + overlapped_s(s, comm * (1 - 1 / tp), window) for comm, window in passes)


def _cp_exposed_s(layer: Layer, s: StepSetup, attention_s: float, full: bool) -> float:
    """Ring attention: cp − 1 K/V hops per pass, hidden behind that pass's attention compute."""
    cp = s.layout.cp
    if cp == 1:
        return 0.0
    att = layer.attention
    if att is None:  # a Mamba layer passes its state between CP ranks, not K/V (left out: one state per rank)
        return 0.0
    kv_bytes = s.tokens * max(1.0, att.num_kv_heads / s.layout.tp) * (att.head_dim + att.v_head_dim) * s.act_bytes
    hop = collective_time_s(Collective.SEND_RECV, kv_bytes, cp, s.path(cp, s.layout.tp), s.a)
    forward = max(0.0, (cp - 1) * hop - attention_s)
    backward = max(0.0, 2 * (cp - 1) * hop - attention_s * BACKWARD_FLASH_ATTENTION)
    return forward * (2 if full else 1) + backward


def head_cost(s: StepSetup) -> StepCost:
    """The final norm, head GEMM and loss; with the step's fixed eager calls (``eager_dispatch_s``: embedding,
    rotary tables, head, loss and optimizer, against the head's and the embedding's charged launches)."""
    ops = head_ops(s.spec, tokens=s.tokens, tp=s.layout.tp, dtype_bytes=s.act_bytes)
    forward = sum(_op_s(op, s) for op in ops)
    fixed = eager_dispatch_s(s.a.eager_training_ops_fixed, charged_launches([*ops, _embedding_op(s)], s), s)
    return StepCost(forward, sum(_op_s(op, s) * _backward_factor(op, s) for op in ops) + fixed)


def charged_launches(ops: list[Op], s: StepSetup) -> float:
    """How many ``kernel_overhead_s`` the roofline charges for ``ops`` forward and backward:
    Σ count · (1 + backward factor)."""
    return sum(op.count * (1 + _backward_factor(op, s)) for op in ops)


def eager_dispatch_s(counted: int, charged: float, s: StepSetup) -> float:
    """counted · ``eager_call_overhead_s`` − charged · ``kernel_overhead_s`` (at least 0) on a CPU accelerator
    for transformers' modules, else 0.

    On a CPU the host runs every operator call in series with its work, so each of eager PyTorch's calls
    (``counted``, measured with torch.profiler: ``spec/assumptions.py``) costs the per-call time bench measures
    in a tiny eager training step (``eager_call_overhead_s``; ``kernel_overhead_s`` when not measured), where
    the roofline charged ``kernel_overhead_s`` for the ``charged`` launches it lists. On a GPU the calls are
    queued asynchronously and overlap the device's work; nothing is added there."""
    if s.accelerator.kind != "cpu" or s.job.framework not in _TRANSFORMERS_FRAMEWORKS:
        return 0.0
    per_call = s.a.kernel_overhead_s if s.a.eager_call_overhead_s is None else s.a.eager_call_overhead_s
    return max(0.0, counted * per_call - charged * s.a.kernel_overhead_s)


def embedding_cost(s: StepSetup) -> StepCost:
    """The lookup writes tokens·h values; its backward scatter-adds them into the table's gradient."""
    t = _op_s(_embedding_op(s), s)
    return StepCost(t, t * BACKWARD_STREAM)


def _embedding_op(s: StepSetup) -> Op:
    return stream("embedding", s.tokens * s.spec.hidden_size, s.act_bytes)
