"""Training step time: each term checked against its formula, derived by hand on small models."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from suanli.core.comms import Collective, collective_time_s, path_for_group
from suanli.core.flops import count_flops
from suanli.core.placement import stage_params
from suanli.core.training_time import compute_format, pipeline_bubble_s, training_time
from suanli.spec.assumptions import AttentionSpan, PerformanceAssumptions
from suanli.spec.hardware import get_accelerator, get_interconnect
from suanli.spec.hf import spec_from_config
from suanli.spec.layout import Layout, PipelineSchedule, Recompute
from suanli.spec.model import ModelSpec
from suanli.spec.resolve import load_model
from suanli.spec.training import Framework, PrecisionMode, TrainingJob

H100 = get_accelerator("h100")
A = PerformanceAssumptions()


@pytest.fixture
def tiny(tiny_llama: dict[str, Any]) -> ModelSpec:
    return spec_from_config(tiny_llama, name="tiny")


def test_bubble_is_narayanan_fraction_of_ideal() -> None:
    assert pipeline_bubble_s(4, 8, 1, ideal_s=8.0) == pytest.approx(3 / 8 * 8.0)
    assert pipeline_bubble_s(4, 8, 2, ideal_s=8.0) == pytest.approx(3 / 16 * 8.0)  # interleaved: ÷ vp
    assert pipeline_bubble_s(1, 8, 1, ideal_s=8.0) == 0.0


def test_step_bubble_uses_the_mean_stage() -> None:
    spec = load_model("llama-3.1-8b")
    layout = Layout(pp=4, micro_batch=1, global_batch=16)
    t = training_time(spec, TrainingJob(seq=2048), layout, H100)
    m = layout.grad_accumulation_steps
    assert m == 16
    assert t.breakdown.bubble_s == pytest.approx((4 - 1) / m * m * t.mean_stage_micro_batch_s)
    interleaved = training_time(spec, TrainingJob(seq=2048), dataclasses.replace(
        layout, vp=2, schedule=PipelineSchedule.INTERLEAVED), H100)
    assert interleaved.breakdown.bubble_s < t.breakdown.bubble_s


def test_tp_all_reduces_four_per_layer_of_tokens_by_hidden(tiny: ModelSpec) -> None:
    """No recompute: 2 all-reduces forward + 2 backward per block, each of micro_batch·seq·h bf16 values."""
    seq, micro = 128, 2
    t = training_time(tiny, TrainingJob(seq=seq), Layout(tp=2, micro_batch=micro, global_batch=4), H100)
    message = micro * seq * tiny.hidden_size * 2
    link = H100.scale_up
    assert link is not None
    by_hand = 2 * (2 - 1) / 2 * message / (link.bandwidth_bytes_per_s * A.network_bandwidth_fraction)
    by_hand += 2 * (2 - 1) * link.interconnect.latency_s
    micro_batches = 2
    assert t.breakdown.tp_comm_s == pytest.approx(micro_batches * tiny.num_layers * 4 * by_hand)
    full = training_time(tiny, TrainingJob(seq=seq), Layout(tp=2, micro_batch=micro, global_batch=4,
                                                           recompute=Recompute.FULL), H100)
    assert full.breakdown.tp_comm_s == pytest.approx(1.5 * t.breakdown.tp_comm_s)  # the forward again


def test_mfu_and_throughput_definitions() -> None:
    spec = load_model("llama-3.1-8b")
    layout = Layout(dp=8, zero=3, micro_batch=2, global_batch=64)
    t = training_time(spec, TrainingJob(seq=4096), layout, H100)
    flops = count_flops(spec, seq=4096, batch=64, span=AttentionSpan.FULL)
    assert t.model_flops_per_step == pytest.approx(flops.training)
    assert t.tokens_per_s == pytest.approx(64 * 4096 / t.step_s)  # the global batch, whole job
    assert t.samples_per_s == pytest.approx(64 / t.step_s)
    assert t.mfu == pytest.approx(flops.training / (t.step_s * 989.4e12 * 8))
    assert t.tflops_per_gpu == pytest.approx(flops.training / t.step_s / 8 / 1e12)
    assert t.step_s == pytest.approx(t.breakdown.total_s)
    assert 0.2 < t.mfu < 0.8


def test_recompute_adds_time_not_model_flops() -> None:
    spec = load_model("llama-3.1-8b")
    job = TrainingJob(seq=2048)
    plain = training_time(spec, job, Layout(dp=8, zero=3), H100)
    full = training_time(spec, job, Layout(dp=8, zero=3, recompute=Recompute.FULL), H100)
    selective = training_time(spec, job, Layout(dp=8, zero=3, recompute=Recompute.SELECTIVE), H100)
    assert full.model_flops_per_step == plain.model_flops_per_step == selective.model_flops_per_step
    assert plain.breakdown.recompute_s == 0 and plain.hfu == pytest.approx(plain.mfu)
    assert full.step_s > selective.step_s > plain.step_s
    assert full.hardware_flops_per_step > selective.hardware_flops_per_step > plain.hardware_flops_per_step
    assert full.hfu > full.mfu
    # full recompute repeats the forward: about a third of forward + backward
    assert full.breakdown.recompute_s == pytest.approx(plain.breakdown.compute_s / 3, rel=0.15)


def test_zero3_gathers_weights_forward_and_backward(tiny: ModelSpec) -> None:
    """With no overlap (slowdown 1) the exposed time is the collectives themselves: ZeRO-3 gathers the bf16
    weights twice and reduce-scatters the gradients each micro-batch, plus one block's worth not hidden."""
    serial = dataclasses.replace(A, overlapped_comm_slowdown=1.0)
    job = TrainingJob(seq=64)
    layout = Layout(dp=4, zero=3, micro_batch=1, global_batch=8)
    t = training_time(tiny, job, layout, H100, assumptions=serial)
    params = stage_params(tiny, layout)[0].params
    path = path_for_group(H100, 4)
    gather = collective_time_s(Collective.ALL_GATHER, params * 2, 4, path, serial)
    reduce = collective_time_s(Collective.REDUCE_SCATTER, params * 2, 4, path, serial)  # MIXED_BF16: bf16 grads
    layers, m = tiny.num_layers, 2
    assert t.breakdown.dp_comm_exposed_s == pytest.approx(m * (2 * gather + reduce + (gather + reduce) / layers))
    zero2 = training_time(tiny, job, dataclasses.replace(layout, zero=2), H100, assumptions=serial)
    assert t.breakdown.dp_comm_exposed_s > zero2.breakdown.dp_comm_exposed_s


def test_data_parallel_all_reduce_hides_behind_backward() -> None:
    spec = load_model("llama-3.1-8b")
    perfect = dataclasses.replace(A, overlapped_comm_slowdown=0.0)
    t = training_time(spec, TrainingJob(seq=4096), Layout(dp=8, micro_batch=4), H100, assumptions=perfect)
    params = stage_params(spec, Layout(dp=8))[0].params
    all_reduce = collective_time_s(Collective.ALL_REDUCE, params * 2, 8, path_for_group(H100, 8), perfect)
    assert t.breakdown.dp_comm_exposed_s == pytest.approx(all_reduce / spec.num_layers)  # only the last bucket


def test_multi_node_groups_drive_one_nic_per_rank() -> None:
    nic = get_interconnect("ib-ndr").bandwidth_bytes_per_s
    assert path_for_group(H100, 64).bandwidth_bytes_per_s == nic
    assert path_for_group(H100, 64, ranks_per_node=4).bandwidth_bytes_per_s == 4 * nic
    link = H100.scale_up
    assert link is not None  # 8 NICs (400 GB/s) would outrun NVLink (450): capped by the fabric when it is slower
    assert path_for_group(H100, 64, ranks_per_node=16).bandwidth_bytes_per_s == link.bandwidth_bytes_per_s


def test_compute_formats() -> None:
    assert compute_format(PrecisionMode.MIXED_BF16, H100) == "bf16"
    assert compute_format(PrecisionMode.MIXED_FP16, H100) == "fp16"
    assert compute_format(PrecisionMode.FP8, H100) == "fp8"
    assert compute_format(PrecisionMode.FP32, H100) == "tf32"
    assert compute_format(PrecisionMode.MIXED_BF16, get_accelerator("v100-sxm2-32gb")) == "fp16"  # no bf16


def test_fp8_is_faster_than_bf16_but_not_twice() -> None:
    spec = load_model("llama-3.1-8b")
    layout = Layout(dp=8, zero=3, micro_batch=2)
    bf16 = training_time(spec, TrainingJob(seq=4096), layout, H100)
    fp8 = training_time(spec, TrainingJob(seq=4096, precision=PrecisionMode.FP8), layout, H100)
    assert bf16.step_s / 2 < fp8.step_s < bf16.step_s
    assert fp8.compute_format == "fp8" and fp8.peak_flops_per_gpu == H100.peak_flops("fp8")


def test_fused_framework_moves_fewer_bytes() -> None:
    spec = load_model("llama-3.1-8b")
    layout = Layout(tp=8, micro_batch=1)
    megatron = training_time(spec, TrainingJob(seq=4096, framework=Framework.MEGATRON), layout, H100)
    fsdp = training_time(spec, TrainingJob(seq=4096, framework=Framework.FSDP), layout, H100)
    assert megatron.breakdown.compute_s < fsdp.breakdown.compute_s


def test_expert_parallel_all_to_all_and_pipeline_sends() -> None:
    spec = load_model("mixtral-8x7b")
    t = training_time(spec, TrainingJob(seq=4096), Layout(ep=8, dp=8, pp=2, zero=1, global_batch=64), H100)
    assert t.breakdown.ep_comm_s > 0 and t.breakdown.pp_comm_s > 0 and t.breakdown.bubble_s > 0
    dense = training_time(load_model("llama-3.1-8b"), TrainingJob(seq=4096), Layout(dp=8), H100)
    assert dense.breakdown.ep_comm_s == dense.breakdown.pp_comm_s == dense.breakdown.bubble_s == 0


def test_context_parallel_ring_is_hidden_behind_long_attention() -> None:
    spec = load_model("llama-3.1-8b")
    t = training_time(spec, TrainingJob(seq=65536), Layout(cp=8, micro_batch=1), H100)
    assert t.breakdown.cp_comm_exposed_s == 0.0  # 64k tokens: attention outlasts the K/V hops
    assert t.tokens_per_step == 65536


def test_train_cli_time_section(capsys: pytest.CaptureFixture[str]) -> None:
    """DESIGN §5: ``suanli train --json`` carries time.step_s, tokens_per_s (whole job), mfu, tflops_per_gpu."""
    from tests.surface.cli_helpers import run_json

    payload = run_json(capsys, "train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--zero", "3", "--seq", "4096",
                       "--global-batch", "32", "--tokens", "1e9")
    time = payload["time"]
    assert time["tokens_per_s"] == pytest.approx(32 * 4096 / time["step_s"])
    assert time["tflops_per_gpu"] == pytest.approx(time["mfu"] * 989.4)
    assert time["total_s"] == pytest.approx(1e9 / time["tokens_per_s"])
    assert sum(time["breakdown"].values()) == pytest.approx(time["step_s"])
    assert {"hfu", "samples_per_s", "compute_format"} <= set(time)
    assert payload["memory"]["per_gpu"]["total_bytes"] > 0  # the memory part is unchanged


@pytest.mark.parametrize(("model", "layout"), [
    ("llama-3.2-1b", Layout(pp=4, tp=2)),  # tied embeddings: the last stage keeps a copy
    ("mixtral-8x7b", Layout(pp=2, ep=4, dp=4)),
    ("gemma-3-4b", Layout(pp=3, vp=2, schedule=PipelineSchedule.INTERLEAVED)),  # alternating layer kinds
])
def test_sync_terms_place_parameters_like_placement(model: str, layout: Layout) -> None:
    """The step's per-stage parameters (summed over distinct blocks, for speed) equal core/placement's."""
    from suanli.core import training_sync
    from suanli.core import training_time as tt

    spec = load_model(model)
    s = tt._setup(spec, TrainingJob(seq=1024), layout, H100, A, 8, "ib-ndr")
    distinct, which = tt._distinct_layers(spec)
    for stage, expected in zip(tt._stages(spec, layout, which), stage_params(spec, layout), strict=True):
        dense, experts = training_sync._stage_params(stage, distinct, s)
        assert dense + experts == pytest.approx(expected.params)
        assert sum(n for _, n in stage[0]) == len(expected.layers)


def test_selective_recompute_of_a_hybrid_recomputes_only_its_attention_layers() -> None:
    """Jamba mixes Mamba and attention blocks: selective recompute repeats the attention scores of the attention
    blocks and nothing of the Mamba ones (which have no scores; this used to raise KeyError)."""
    from suanli.core.flops import layer_forward_flops
    from suanli.quantity import plain

    spec = load_model("jamba-1.5-mini")
    job = TrainingJob(seq=2048)
    t = training_time(spec, job, Layout(global_batch=2, micro_batch=2, recompute=Recompute.SELECTIVE),
                      get_accelerator("h100"))
    scores = sum(layer_forward_flops(layer, spec.hidden_size, job.seq, AttentionSpan.FULL, plain)
                 .get("attention_scores", 0.0) for layer in spec.layers)
    assert scores > 0
    assert t.hardware_flops_per_step - t.model_flops_per_step == pytest.approx(2 * scores, rel=1e-12)
