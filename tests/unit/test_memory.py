"""Training memory assembly: what each knob changes, derived by hand where possible."""

from __future__ import annotations

import pytest

from suanli.core.memory import micro_batches_in_flight, training_memory
from suanli.core.params import count_params
from suanli.spec.layout import Layout, Offload, PipelineSchedule, Recompute
from suanli.spec.resolve import load_model
from suanli.spec.training import Method, Optimizer, PrecisionMode, TrainingJob

CAPACITY = 80 * 2**30
LLAMA_8B = load_model("llama-3.1-8b")
N = count_params(LLAMA_8B).total


def test_full_finetune_states_are_16_bytes_per_param() -> None:
    memory = training_memory(LLAMA_8B, TrainingJob(seq=1024), Layout(), capacity_bytes=CAPACITY)
    assert memory.model_states_bytes == 16 * N
    parts = (memory.model_states_bytes + memory.activations_bytes + memory.workspace_bytes + memory.comm_buffers_bytes
             + memory.cuda_context_bytes + memory.fragmentation_bytes)
    assert memory.total_bytes == pytest.approx(parts)
    assert memory.fits is (memory.total_bytes <= CAPACITY)


def test_gradient_accumulation_costs_no_memory() -> None:
    job = TrainingJob(seq=1024)
    one = training_memory(LLAMA_8B, job, Layout(dp=8, zero=3, micro_batch=2), capacity_bytes=CAPACITY)
    many = training_memory(LLAMA_8B, job, Layout(dp=8, zero=3, micro_batch=2, global_batch=512),
                           capacity_bytes=CAPACITY)
    assert many.total_bytes == one.total_bytes


def test_activations_follow_micro_batch_linearly() -> None:
    job = TrainingJob(seq=1024)
    one = training_memory(LLAMA_8B, job, Layout(micro_batch=1), capacity_bytes=CAPACITY).activations_bytes
    four = training_memory(LLAMA_8B, job, Layout(micro_batch=4), capacity_bytes=CAPACITY).activations_bytes
    assert four == pytest.approx(4 * one, rel=1e-3)  # RoPE cos/sin tables are shared by the batch
    assert four < 4 * one


def test_recompute_shrinks_activations() -> None:
    job = TrainingJob(seq=4096)
    sizes = [training_memory(LLAMA_8B, job, Layout(recompute=r), capacity_bytes=CAPACITY).activations_bytes
             for r in (Recompute.NONE, Recompute.SELECTIVE, Recompute.FULL)]
    assert sizes[0] >= sizes[1] > sizes[2]


def test_micro_batches_in_flight() -> None:
    assert micro_batches_in_flight(Layout(pp=4, dp=1, global_batch=16)) == 4  # 1F1B first stage
    assert micro_batches_in_flight(Layout(pp=4, dp=1, global_batch=16), stage=3) == 1  # last stage
    assert micro_batches_in_flight(Layout(pp=4, dp=1, global_batch=2)) == 2  # fewer micro-batches than stages
    assert micro_batches_in_flight(Layout(pp=4, global_batch=16, schedule=PipelineSchedule.GPIPE)) == 16
    interleaved = Layout(pp=4, vp=2, global_batch=16, schedule=PipelineSchedule.INTERLEAVED)
    assert micro_batches_in_flight(interleaved) == 4 * (1 + 3 / 8)


def test_qlora_base_is_smaller_than_lora_base() -> None:
    lora = training_memory(LLAMA_8B, TrainingJob(seq=512, method=Method.LORA), Layout(), capacity_bytes=CAPACITY)
    qlora = training_memory(LLAMA_8B, TrainingJob(seq=512, method=Method.QLORA, optimizer=Optimizer.PAGED_ADAMW_8BIT),
                            Layout(), capacity_bytes=CAPACITY)
    blocks = N - 2 * 128256 * 4096 - 4096  # embedding, head and final norm stay bf16
    assert lora.weights_bytes == pytest.approx(2 * N + 4 * lora.trainable_params, rel=1e-6)
    # NF4 with double quantisation: 4.127 bits per block weight (norms inside blocks are counted as NF4 here)
    assert qlora.weights_bytes == pytest.approx(blocks * 4.127 / 8 + (N - blocks) * 2 + 4 * qlora.trainable_params,
                                                rel=1e-3)
    assert lora.trainable_params == qlora.trainable_params


def test_offload_reports_host_memory() -> None:
    layout = Layout(dp=8, zero=2, offload_optimizer=Offload.CPU)
    memory = training_memory(LLAMA_8B, TrainingJob(seq=1024), layout, capacity_bytes=CAPACITY)
    assert memory.optimizer_bytes == memory.master_weights_bytes == 0
    # DeepSpeed ZeRO-Offload: fp32 grads, fp32 master, Adam m and v, and a 16-bit copy of the partition
    assert memory.host_bytes == pytest.approx((4 + 4 + 8 + 2) * N / 8)


def test_megatron_precision_is_18_bytes() -> None:
    job = TrainingJob(seq=1024, precision=PrecisionMode.MIXED_FP32_GRADS)
    assert training_memory(LLAMA_8B, job, Layout(), capacity_bytes=CAPACITY).model_states_bytes == 18 * N


def test_zero_shards_experts_over_expert_data_parallel_group() -> None:
    mixtral = load_model("mixtral-8x7b")
    job = TrainingJob(seq=512)
    no_ep = training_memory(mixtral, job, Layout(dp=8, zero=1), capacity_bytes=CAPACITY)
    ep8 = training_memory(mixtral, job, Layout(dp=8, zero=1, ep=8), capacity_bytes=CAPACITY)
    # with ep = dp = 8 each expert lives on one GPU: its optimizer states cannot be sharded further,
    # so they stay whole (12 B/param) while the experts' weights shrink 8×
    experts = 32 * 8 * 3 * 4096 * 14336
    dense = count_params(mixtral).total - experts
    assert ep8.optimizer_bytes + ep8.master_weights_bytes == pytest.approx(12 * (dense / 8 + experts / 8))
    assert no_ep.optimizer_bytes + no_ep.master_weights_bytes == pytest.approx(12 * (dense + experts) / 8)


@pytest.mark.parametrize(("model", "pp", "vp", "global_batch"), [
    ("llama-3.1-405b", 16, 1, 64), ("llama-3.1-405b", 7, 2, 4), ("llama-3.1-405b", 4, 1, 2),
    ("deepseek-v3", 16, 1, 64), ("deepseek-v3", 3, 1, 8),
    ("jamba-1.5-mini", 8, 2, 4), ("jamba-1.5-mini", 3, 1, 8)])
def test_alike_stages_are_evaluated_once(model: str, pp: int, vp: int, global_batch: int) -> None:
    """training_memory evaluates one stage per set of stages with the same blocks and ends; its answer is the
    maximum over every stage (uneven splits, DeepSeek-V3's dense first blocks, Jamba's attention/Mamba mix)."""
    from suanli.core.memory import _stage_memory
    from suanli.core.placement import stage_params
    from suanli.spec.assumptions import MemoryAssumptions

    spec = load_model(model)
    schedule = PipelineSchedule.INTERLEAVED if vp > 1 else PipelineSchedule.ONE_F_ONE_B
    layout = Layout(pp=pp, vp=vp, global_batch=global_batch, schedule=schedule, recompute=Recompute.SELECTIVE)
    job = TrainingJob(seq=4096)
    every = [_stage_memory(spec, job, layout, stage, 80e9, MemoryAssumptions()) for stage in stage_params(spec, layout)]
    assert training_memory(spec, job, layout, capacity_bytes=80e9) == max(every, key=lambda m: m.total_bytes)
