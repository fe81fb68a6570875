"""Training-time terms derived by hand: mixture-of-experts (core/moe_time.py), eager Megatron dropout, TP
communication overlap, FlashAttention-2 on Hopper."""

from __future__ import annotations

import dataclasses

import pytest

from suanli.core.comms import Collective, collective_time_s, path_for_group
from suanli.core.moe_time import all_to_all_s, ep_comm_s, moe_dispatch_ops
from suanli.core.training_block import block_kernels as _kernels
from suanli.core.training_time import _setup, training_time
from suanli.errors import SpecError
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.hardware import get_accelerator, get_interconnect
from suanli.spec.layout import AttentionImpl, Layout
from suanli.spec.model import Moe
from suanli.spec.resolve import load_model
from suanli.spec.training import Framework, PrecisionMode, TrainingJob

H100 = get_accelerator("h100")
A = PerformanceAssumptions()
QWEN = load_model("qwen3-30b-a3b")  # h 2048, 128 experts, top-8, 48 layers


def _setup_for(layout: Layout, a: PerformanceAssumptions = A, seq: int = 4096):  # type: ignore[no-untyped-def]
    job = TrainingJob(seq=seq, framework=Framework.MEGATRON)
    return _setup(QWEN, job, layout, H100, a, 8, "ib-ndr")


def _moe() -> Moe:
    ffn = QWEN.layers[0].ffn
    assert isinstance(ffn, Moe)
    return ffn


def test_all_to_all_inside_a_node_is_the_fabric_collective() -> None:
    s = _setup_for(Layout(ep=8, dp=8))
    n = 1e8
    assert all_to_all_s(s, n, 8, 1) == collective_time_s(Collective.ALL_TO_ALL, n, 8, s.path(8), A)


def test_all_to_all_across_nodes_sends_the_remote_share_through_each_ranks_nic() -> None:
    """ep 16 over two 8-GPU nodes: 7/16 of a rank's bytes cross NVLink, 8/16 leave through its own 50 GB/s NIC."""
    s = _setup_for(Layout(ep=16, dp=16))
    n = 1e8
    nic = get_interconnect("ib-ndr")
    fabric = path_for_group(H100, 8).bandwidth_bytes_per_s
    f = A.network_bandwidth_fraction
    by_hand = 15 * nic.latency_s + max(n * 7 / 16 / (fabric * f), n * 8 / 16 / (nic.bandwidth_bytes_per_s * f))
    assert all_to_all_s(s, n, 16, 1) == pytest.approx(by_hand)
    assert by_hand == pytest.approx(15 * nic.latency_s + n * 8 / 16 / (nic.bandwidth_bytes_per_s * f))  # NIC-bound


def test_ep_comm_is_dispatch_and_combine_of_routed_tokens_per_pass() -> None:
    layout = Layout(ep=8, dp=8, micro_batch=1)
    s = _setup_for(layout)
    routed = 4096 * 8 * 2048 * 2.0  # tokens · top_k · h · bf16 bytes
    one = collective_time_s(Collective.ALL_TO_ALL, routed, 8, s.path(8), A)
    assert ep_comm_s(_moe(), s, 2) == pytest.approx(4 * one)  # forward and backward, dispatch and combine
    assert ep_comm_s(_moe(), s, 3) == pytest.approx(6 * one)  # plus a full recompute's forward


def test_dispatch_ops_count_the_permutation_bytes() -> None:
    """T = 4096 tokens, k = 8, h = 2048, bf16: permute reads T·h and writes T·k·h; sorting by local expert reads
    and writes the routed rows there and back (4 T·k·h); unpermute reads T·k·h and writes T·h."""
    s = _setup_for(Layout(ep=8, dp=8, micro_batch=1))
    t, k, h, b = 4096, 8, 2048, 2.0
    ops = {op.name: op for op in moe_dispatch_ops(_moe(), s)}
    assert ops["moe_permute"].bytes == pytest.approx(t * h * b + t * k * h * b)
    assert ops["moe_sort_chunks"].bytes == pytest.approx(4 * t * k * h * b)
    assert ops["moe_unpermute"].bytes == pytest.approx(t * k * h * b + t * h * b)
    assert ops["moe_router_softmax_topk"].bytes == pytest.approx(t * 128 * 4 * 3)
    single = {op.name for op in moe_dispatch_ops(_moe(), _setup_for(Layout(ep=1, dp=8, micro_batch=1)))}
    assert "moe_sort_chunks" not in single  # no expert parallelism: nothing arrives to regroup


def test_load_imbalance_scales_the_busiest_ranks_experts_and_all_to_all() -> None:
    layout = Layout(ep=8, dp=8, micro_batch=1, global_batch=8)
    heavy_a = dataclasses.replace(A, moe_load_imbalance=1.25)
    even, heavy = _setup_for(layout), _setup_for(layout, heavy_a)
    lat = 2 * 2 * 7 * path_for_group(H100, 8).latency_s
    assert ep_comm_s(_moe(), heavy, 2) - lat == pytest.approx(1.25 * (ep_comm_s(_moe(), even, 2) - lat))
    experts = {op.name: op.flops for op in _kernels(QWEN.layers[0], even) if op.name.startswith("expert_")}
    heavier = {op.name: op.flops for op in _kernels(QWEN.layers[0], heavy) if op.name.startswith("expert_")}
    assert heavier == {name: pytest.approx(1.25 * flops) for name, flops in experts.items()}
    job = TrainingJob(seq=4096, framework=Framework.MEGATRON)
    assert training_time(QWEN, job, layout, H100, assumptions=heavy_a).step_s > training_time(
        QWEN, job, layout, H100).step_s


def test_load_imbalance_below_one_is_refused() -> None:
    with pytest.raises(SpecError, match="moe_load_imbalance"):
        PerformanceAssumptions(moe_load_imbalance=0.9)


def test_eager_megatron_pays_attention_dropout_over_the_scores() -> None:
    """Megatron-LM's eager attention with dropout 0.1: a kernel over the heads·S² scores moving 2 + 2 + 1 bytes
    each (read the probabilities, write the kept ones and the bool mask); none under FlashAttention or FSDP."""
    spec = load_model("llama-3.1-8b")
    layout = Layout(tp=8, micro_batch=1)
    seq = 2048

    def names(job: TrainingJob) -> dict[str, float]:
        s = _setup(spec, job, layout, H100, A, 8, "ib-ndr")
        return {op.name: op.bytes for op in _kernels(spec.layers[0], s)}

    eager = names(TrainingJob(seq=seq, attention=AttentionImpl.EAGER, framework=Framework.MEGATRON))
    scores = 32 / 8 * seq * seq  # heads per GPU × S² (full span: eager attention computes every pair)
    assert eager["attention_dropout"] == pytest.approx(scores * 5)
    assert "attention_dropout" not in names(TrainingJob(seq=seq, attention=AttentionImpl.EAGER,
                                                        framework=Framework.FSDP))
    assert "attention_dropout" not in names(TrainingJob(seq=seq, framework=Framework.MEGATRON))


def test_tp_comm_overlap_exposes_the_first_chunk_of_each_pass() -> None:
    """Megatron-Core's userbuffers overlap with sequence parallelism: with perfect overlap (slowdown 0) and linears
    longer than the communication, each pass exposes 1/tp of its collectives: (2 + 3) all-reduce equivalents
    per block per micro-batch (forward; backward with the re-gather), over tp = 8."""
    spec = load_model("llama-3.1-8b")
    layout = Layout(tp=8, sp=True, micro_batch=1, global_batch=1)
    perfect = dataclasses.replace(A, overlapped_comm_slowdown=0.0)
    job = TrainingJob(seq=8192, framework=Framework.MEGATRON)
    plain = training_time(spec, job, layout, H100, assumptions=perfect)
    overlapped = training_time(spec, dataclasses.replace(job, tp_comm_overlap=True), layout, H100,
                               assumptions=perfect)
    all_reduce = collective_time_s(Collective.ALL_REDUCE, 8192 * spec.hidden_size * 2.0, 8, path_for_group(H100, 8),
                                   perfect)
    assert plain.breakdown.tp_comm_s == pytest.approx(spec.num_layers * 5 * all_reduce)
    assert overlapped.breakdown.tp_comm_s == pytest.approx(spec.num_layers * 5 * all_reduce / 8)
    no_sp = training_time(spec, dataclasses.replace(job, tp_comm_overlap=True), dataclasses.replace(layout, sp=False),
                          H100, assumptions=perfect)
    assert no_sp.breakdown.tp_comm_s == pytest.approx(spec.num_layers * 4 * all_reduce)  # needs sp: not applied


def test_flash_attention_2_runs_at_the_ampere_ratio_on_hopper() -> None:
    """FSDP/SDPA call FlashAttention-2 (Ampere mma.sync kernels): on H100 its share of peak is 0.48 of the A100
    share (35% vs 73%, catalog header); Megatron-Core's cuDNN kernels and A100 runs keep the full share."""
    spec = load_model("llama-3.1-8b")
    layout = Layout(micro_batch=1)

    def attention_s(framework: Framework, gpu: str) -> float:
        s = _setup(spec, TrainingJob(seq=4096, framework=framework), layout, get_accelerator(gpu), A, 8, "ib-ndr")
        return s.a.attention_peak_fraction

    assert get_accelerator("h100").ampere_attention_ratio == 0.48
    assert attention_s(Framework.FSDP, "h100") == pytest.approx(0.48 * A.training_attention_peak_fraction)
    assert attention_s(Framework.MEGATRON, "h100") == pytest.approx(A.training_attention_peak_fraction)
    assert attention_s(Framework.FSDP, "a100") == pytest.approx(A.training_attention_peak_fraction)


def test_expert_gemms_run_at_the_per_expert_shape() -> None:
    """Grouped GEMM: each of the 128 / 8 = 16 local experts runs a GEMM over its own tokens, T·k/E from each of
    the 8 ranks (4096 · 8 / 128 · 8 = 2048 rows), so the efficiency curve sees 2·2048·(2·768)·2048 FLOPs, not
    the aggregated GEMM."""
    s = _setup_for(Layout(ep=8, dp=8, micro_batch=1))
    ops = {op.name: op for op in _kernels(QWEN.layers[0], s)}
    up = ops["expert_up_gate"]
    assert up.count == 16
    assert up.flops == pytest.approx(2 * 2048 * (2 * 768) * 2048)


def test_fp8_casts_are_cast_transposes_of_input_output_gradient_and_weight() -> None:
    """Transformer Engine around an m×k by k×n FP8 linear: the bf16 input and the output gradient each read (2 B)
    and written as fp8 plus its fp8 transpose (1 + 1 B) per micro-batch, 4·m·k + 4·m·n; the weight likewise once
    per step, 4·k·n over the step's 4 micro-batches; half of it in forward. Llama-3.1-8B's down projection at
    seq 4096: m = 4096, k = 14336, n = 4096."""
    spec = load_model("llama-3.1-8b")
    job = TrainingJob(seq=4096, framework=Framework.MEGATRON, precision=PrecisionMode.FP8)
    s = _setup(spec, job, Layout(micro_batch=1, global_batch=4), H100, A, 8, "ib-ndr")
    ops = {op.name: op for op in _kernels(spec.layers[0], s)}
    m, k, n = 4096, 14336, 4096
    assert ops["mlp_down_fp8_cast"].bytes == pytest.approx((4 * m * k + 4 * m * n + 4 * k * n / 4) / 2)
    assert ops["mlp_down_fp8_cast"].flops == 0.0


def test_fp8_casts_of_an_expert_gemm_use_its_per_expert_rows() -> None:
    """Qwen3-30B-A3B at ep 8: each local expert's up/gate GEMM has 4096 · 8 / 128 · 8 = 2048 rows, k = 2048,
    n = 2 · 768, one micro-batch per step; the cast op carries the 16 local experts as its count."""
    job = TrainingJob(seq=4096, framework=Framework.MEGATRON, precision=PrecisionMode.FP8)
    s = _setup(QWEN, job, Layout(ep=8, dp=8, micro_batch=1), H100, A, 8, "ib-ndr")
    cast = {op.name: op for op in _kernels(QWEN.layers[0], s)}["expert_up_gate_fp8_cast"]
    m, k, n = 2048, 2048, 2 * 768
    assert cast.bytes == pytest.approx((4 * m * k + 4 * m * n + 4 * k * n) / 2)
    assert cast.count == 16
