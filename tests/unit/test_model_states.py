"""Bytes per parameter, sharding, offload and placement, derived by hand."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.core.model_states import (
    adafactor_state_values,
    adapter_state_bytes,
    optimizer_bytes_per_param,
    shard_states,
    state_bytes,
)
from suanli.core.params import count_params
from suanli.core.placement import layer_params_per_gpu, stage_layers, stage_params
from suanli.errors import LayoutError, SpecError
from suanli.spec.hf import spec_from_config
from suanli.spec.layout import Layout, Offload, PipelineSchedule
from suanli.spec.training import Optimizer, PrecisionMode


@pytest.mark.parametrize(("mode", "expected"), [
    (PrecisionMode.FP32, 4 + 4 + 0 + 8),
    (PrecisionMode.AMP_BF16, 4 + 4 + 0 + 8),
    (PrecisionMode.MIXED_BF16, 2 + 2 + 4 + 8),  # the ZeRO paper's 16 bytes
    (PrecisionMode.MIXED_FP32_GRADS, 2 + 4 + 4 + 8),  # Megatron's 18 bytes
    (PrecisionMode.PURE_BF16, 2 + 2 + 0 + 4),
])
def test_adamw_bytes_per_param(mode: PrecisionMode, expected: float) -> None:
    assert state_bytes(mode, Optimizer.ADAMW).total == expected


def test_optimizer_states() -> None:
    assert optimizer_bytes_per_param(Optimizer.ADAMW_8BIT, PrecisionMode.MIXED_BF16) == 2 * (1 + 4 / 2048)
    assert optimizer_bytes_per_param(Optimizer.SGD_MOMENTUM, PrecisionMode.MIXED_BF16) == 4
    assert optimizer_bytes_per_param(Optimizer.LION, PrecisionMode.PURE_BF16) == 2
    assert optimizer_bytes_per_param(Optimizer.SGD, PrecisionMode.MIXED_BF16) == 0


def test_offload_moves_optimizer_side_to_host() -> None:
    """ZeRO-2 + CPU offload, 1e9 parameters over 4 ranks: the GPU keeps the 16-bit weights only; the host keeps
    each rank's fp32 gradients (4), master (4), Adam m and v (8) and a 16-bit copy of the partition (2)."""
    per_param = state_bytes(PrecisionMode.MIXED_BF16, Optimizer.ADAMW)
    states = shard_states(trainable=1e9, frozen_weight_bytes=0.0, per_param=per_param,
                          layout=Layout(dp=4, zero=2, offload_optimizer=Offload.CPU))
    assert states.weights == 2e9
    assert states.gradients == states.master_weights == states.optimizer == 0
    assert states.offloaded_to_host == (4e9 + 4e9 + 8e9 + 2e9) / 4


def test_zero1_offload_keeps_unpartitioned_gradients_on_gpu() -> None:
    per_param = state_bytes(PrecisionMode.MIXED_BF16, Optimizer.ADAMW)
    states = shard_states(trainable=1e9, frozen_weight_bytes=0.0, per_param=per_param,
                          layout=Layout(dp=4, zero=1, offload_optimizer=Offload.CPU))
    assert (states.weights, states.gradients) == (2e9, 2e9)
    assert states.offloaded_to_host == (4e9 + 4e9 + 8e9 + 2e9) / 4


def test_zero3_offload_has_no_host_staging_copy() -> None:
    """ZeRO-3 copies the updated fp32 partition straight into the 16-bit shard: host = grads + master + states
    (16 bytes), plus the 16-bit weight shard when parameters are offloaded too; NVMe takes the same tensors."""
    per_param = state_bytes(PrecisionMode.MIXED_BF16, Optimizer.ADAMW)
    optimizer_only = shard_states(trainable=1e9, frozen_weight_bytes=0.0, per_param=per_param,
                                  layout=Layout(dp=4, zero=3, offload_optimizer=Offload.CPU))
    assert optimizer_only.weights == 2e9 / 4
    assert optimizer_only.offloaded_to_host == 16e9 / 4
    everything = shard_states(trainable=1e9, frozen_weight_bytes=0.0, per_param=per_param,
                              layout=Layout(dp=4, zero=3, offload_optimizer=Offload.NVME, offload_params=Offload.CPU))
    assert everything.weights == everything.gradients == 0
    assert (everything.offloaded_to_host, everything.offloaded_to_nvme) == (2e9 / 4, 16e9 / 4)


def test_offloaded_adapter_gradients_stay_fp32() -> None:
    """PEFT adapters have no master copy: the host gradient is the fp32 gradient itself, the staging copy fp32."""
    states = shard_states(trainable=1e6, frozen_weight_bytes=2e9, per_param=adapter_state_bytes(Optimizer.ADAMW),
                          layout=Layout(dp=2, zero=2, offload_optimizer=Offload.CPU))
    assert states.weights == 2e9 + 4e6
    assert states.offloaded_to_host == (4e6 + 8e6 + 4e6) / 2


def test_adafactor_factors_matrices_by_hand(tiny_llama: dict[str, Any]) -> None:
    """Tiny llama (hidden 64, q 64, k/v 32, SwiGLU 128, vocab 100, untied, 2 layers): every weight matrix keeps
    rows + cols values, every norm weight its size."""
    spec = spec_from_config(tiny_llama, name="t")
    q = o = 64 + 64
    k = v = 32 + 64
    gate = up = down = 128 + 64
    layer = q + k + v + o + gate + up + down + 2 * 64  # + input and post-attention RMSNorms
    values = 2 * layer + 2 * (100 + 64) + 64  # embedding, lm_head, final norm
    assert values == 2696
    assert count_params(spec).total == 86848
    assert adafactor_state_values(spec) == pytest.approx(values / 86848)
    # fp32 statistics whatever the precision mode (HF's Adafactor upcasts the gradient first)
    for mode in (PrecisionMode.MIXED_BF16, PrecisionMode.PURE_BF16):
        assert optimizer_bytes_per_param(Optimizer.ADAFACTOR, mode, spec) == pytest.approx(4 * values / 86848)
    assert state_bytes(PrecisionMode.MIXED_BF16, Optimizer.ADAFACTOR, spec).optimizer == pytest.approx(
        4 * values / 86848)


def test_adafactor_fused_experts_keep_a_row_and_column_per_expert(tiny_llama: dict[str, Any]) -> None:
    """transformers 5 stores the experts of a layer as gate_up [E, 2i, h] and down [E, h, i]: Adafactor keeps
    E·(2i + h) and E·(h + i) values; the router (E × h) keeps E + h."""
    config = {**tiny_llama, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2}
    spec = spec_from_config(config, name="t")
    attention = (64 + 64) + 2 * (32 + 64) + (64 + 64)
    experts = 4 * (2 * 128 + 64) + 4 * (64 + 128)
    layer = attention + experts + (4 + 64) + 2 * 64
    values = 2 * layer + 2 * (100 + 64) + 64
    assert adafactor_state_values(spec) * count_params(spec).total == pytest.approx(values)


def test_adafactor_needs_the_model() -> None:
    with pytest.raises(SpecError, match="weight shapes"):
        optimizer_bytes_per_param(Optimizer.ADAFACTOR, PrecisionMode.MIXED_BF16)


def test_stage_layers() -> None:
    assert [len(s) for s in stage_layers(10, 4)] == [3, 3, 2, 2]
    assert stage_layers(8, 2, vp=2) == [(0, 1, 4, 5), (2, 3, 6, 7)]


def test_pipeline_stages_sum_to_model(tiny_llama: dict[str, Any]) -> None:
    spec = spec_from_config({**tiny_llama, "num_hidden_layers": 4}, name="t")
    stages = stage_params(spec, Layout(pp=2))
    assert sum(s.params for s in stages) == count_params(spec).total
    assert stages[0].params - stages[0].block_params == 100 * 64  # embedding on the first stage
    assert stages[1].params - stages[1].block_params == 64 + 64 * 100  # final norm and head on the last


def test_tp_replicates_kv_heads_beyond_their_count(tiny_llama: dict[str, Any]) -> None:
    spec = spec_from_config(tiny_llama, name="t")  # 4 query heads, 2 KV heads of 16, hidden 64
    layer = spec.layers[0]
    q_o = 2 * 64 * 64
    one_kv_head = 2 * 64 * 16
    mlp, norms = 3 * 64 * 128, 2 * 64
    assert layer_params_per_gpu(layer, 64, tp=4, ep=1) == q_o / 4 + one_kv_head + mlp / 4 + norms
    assert layer_params_per_gpu(layer, 64, tp=2, ep=1) == (q_o + 2 * one_kv_head) / 2 + mlp / 2 + norms


def test_layout_errors_name_the_numbers(tiny_llama: dict[str, Any]) -> None:
    spec = spec_from_config(tiny_llama, name="t")
    with pytest.raises(LayoutError, match=r"num_attention_heads \(4\) is not divisible by tp \(3\)"):
        Layout(tp=3).check(spec)
    with pytest.raises(LayoutError, match=r"exceeds the 2 layers"):
        Layout(pp=4).check(spec)
    with pytest.raises(LayoutError, match="dense"):
        Layout(ep=2, dp=2).check(spec)
    with pytest.raises(LayoutError, match="global batch 10 is not a multiple"):
        Layout(dp=4, global_batch=10)
    with pytest.raises(LayoutError, match="interleaved"):
        Layout(vp=2, schedule=PipelineSchedule.ONE_F_ONE_B)
