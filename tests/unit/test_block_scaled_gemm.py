"""Block-scaled fp8 GEMMs (DeepSeek-V3's 128×128 weight blocks) against hand-derived numbers: each of their
GEMMs takes ``block_scaled_gemm_latency_s`` beyond its roofline, and their compute runs at
``block_scaled_gemm_peak_fraction`` of the fp8 peak instead of ``gemm_peak_fraction`` ×
``low_precision_gemm_ratio``; per-tensor fp8, bf16 and GPUs without fp8 are untouched. MoE layers also pay
``moe_dispatch_kernels`` launches (top-k, sort by expert, activation, weighted sum)."""

from __future__ import annotations

import pytest

from suanli.core.inference_time import decode_step_time, prefill_time, serving_setup
from suanli.core.serving_ops import block_scaled
from suanli.errors import SpecError
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.hardware import get_accelerator
from suanli.spec.precision import parse_number_format
from suanli.spec.resolve import load_model

H100 = get_accelerator("h100")
A100 = get_accelerator("a100")
LLAMA8 = load_model("llama-3.1-8b")
BLOCK = parse_number_format("fp8-block128x128")
TENSOR = parse_number_format("fp8")
# No launch or engine costs: what is left is the roofline plus the block-scaled latency.
BARE = PerformanceAssumptions(engine_step_overhead_s=0, engine_request_overhead_s=0, graph_kernel_overhead_s=0,
                              collective_overhead_s=0, kernel_overhead_s=0)
LATENCY = BARE.block_scaled_gemm_latency_s


def test_which_formats_are_block_scaled() -> None:
    assert block_scaled(BLOCK, H100)
    assert not block_scaled(TENSOR, H100)  # one scale per tensor: cuBLASLt's fp8 GEMM, no main-loop rescaling
    assert not block_scaled(parse_number_format("bf16"), H100)
    assert not block_scaled(BLOCK, A100)  # no fp8 on A100: the weights are dequantized to bf16 (Marlin)


def test_decode_adds_the_latency_once_per_weight_gemm() -> None:
    block, tensor = (decode_step_time(serving_setup(LLAMA8, H100, weights_format=f, assumptions=BARE), batch=1,
                                      context=0) for f in (BLOCK, TENSOR))
    # Llama-3.1-8B: 32 layers × 4 fused GEMMs (qkv, o, gate_up, down); the bf16 output head has none
    assert block.overhead_s == pytest.approx(32 * 4 * LATENCY, rel=1e-12)
    assert tensor.overhead_s == 0
    # the weight reads differ only by the fp32 scale per 128×128 block (4 B per 16,384 weights)
    assert block.weights_s == pytest.approx(tensor.weights_s * (1 + 4 / 16_384), rel=1e-3)


def test_router_gemm_runs_in_bf16_without_the_latency() -> None:
    r1 = load_model("deepseek-r1")
    step = decode_step_time(serving_setup(r1, get_accelerator("h200"), tp=8, assumptions=BARE), batch=1, context=0)
    # 3 dense layers: q_a, q_b, kv_a, kv_b, o, gate_up, down = 7 GEMMs; 58 MoE layers: the same 5 attention
    # GEMMs, routed gate_up and down, shared gate_up and down = 9, the bf16 router not counted
    assert step.overhead_s == pytest.approx((3 * 7 + 58 * 9) * LATENCY, rel=1e-12)


def test_prefill_gemms_run_at_the_block_scaled_fraction_of_the_fp8_peak() -> None:
    flat = PerformanceAssumptions(engine_step_overhead_s=0, engine_request_overhead_s=0, graph_kernel_overhead_s=0,
                                  collective_overhead_s=0, kernel_overhead_s=0, gemm_half_work_flops=0)
    block, tensor = (prefill_time(serving_setup(LLAMA8, H100, weights_format=f, assumptions=flat), batch=1,
                                  prompt_tokens=4096) for f in (BLOCK, TENSOR))
    # weights per layer: qkv 4096×6144, o 4096×4096, gate_up 4096×28672, down 14336×4096 (the head is bf16)
    per_layer = 4096 * (4096 + 1024 + 1024) + 4096 * 4096 + 4096 * 2 * 14336 + 14336 * 4096  # 218,103,808
    gemm_flops = 2 * 4096 * 32 * per_layer  # 5.72e13
    fp8 = 1978.9e12
    expected = gemm_flops / (fp8 * 0.21) - gemm_flops / (fp8 * 0.80 * 0.88)  # 0.1376 − 0.0410 = 0.0965 s
    assert block.compute_s - tensor.compute_s == pytest.approx(expected, rel=1e-6)  # attention is the same
    assert block.compute_s - tensor.compute_s == pytest.approx(0.0965, abs=5e-4)


def test_the_fraction_and_latency_are_validated() -> None:
    with pytest.raises(SpecError, match="block_scaled_gemm_peak_fraction"):
        PerformanceAssumptions(block_scaled_gemm_peak_fraction=0)
    with pytest.raises(SpecError, match="block_scaled_gemm_latency_s"):
        PerformanceAssumptions(block_scaled_gemm_latency_s=-1e-6)
    with pytest.raises(SpecError, match="moe_dispatch_kernels"):
        PerformanceAssumptions(moe_dispatch_kernels=-1)


def test_moe_layers_pay_their_dispatch_kernels() -> None:
    mixtral = load_model("mixtral-8x7b")  # bf16: no block-scaled latency
    launch = 2.5e-6
    a = PerformanceAssumptions(engine_step_overhead_s=0, engine_request_overhead_s=0, graph_kernel_overhead_s=launch,
                               collective_overhead_s=0, kernel_overhead_s=0)
    without = PerformanceAssumptions(engine_step_overhead_s=0, engine_request_overhead_s=0,
                                     graph_kernel_overhead_s=launch, collective_overhead_s=0, kernel_overhead_s=0,
                                     moe_dispatch_kernels=0)
    with_, bare = (decode_step_time(serving_setup(mixtral, H100, assumptions=x), batch=1, context=0)
                   for x in (a, without))
    # 32 MoE layers × 7 launches of 2.5 µs
    assert with_.overhead_s - bare.overhead_s == pytest.approx(32 * 7 * launch, rel=1e-9)
    dense = (decode_step_time(serving_setup(LLAMA8, H100, assumptions=x), batch=1, context=0) for x in (a, without))
    assert len({d.overhead_s for d in dense}) == 1  # dense layers have none
