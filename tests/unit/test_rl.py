"""RL fine-tuning and distillation: which models are resident, derived from their parts."""

from __future__ import annotations

import pytest

from suanli.core.kv_cache import kv_cache_bytes
from suanli.core.memory import training_memory
from suanli.core.params import count_params
from suanli.core.rl import RlAlgorithm, RlSetup, distillation_memory, rl_memory, with_value_head
from suanli.errors import SpecError
from suanli.spec.layout import Layout, Recompute
from suanli.spec.resolve import load_model
from suanli.spec.training import TrainingJob

CAPACITY = 80 * 2**30
ACTOR = load_model("qwen2.5-1.5b")
JOB = TrainingJob(seq=1024)
LAYOUT = Layout(recompute=Recompute.FULL)


def test_ppo_keeps_four_models() -> None:
    rl = RlSetup(algorithm=RlAlgorithm.PPO, prompt_tokens=256, response_tokens=768)
    memory = rl_memory(ACTOR, JOB, LAYOUT, rl, capacity_bytes=CAPACITY)
    n = count_params(ACTOR).total
    value_model = count_params(with_value_head(ACTOR)).total
    assert memory.extra_bytes["reference_bytes"] == pytest.approx(2 * n)
    assert memory.extra_bytes["reward_model_bytes"] == pytest.approx(2 * value_model + ACTOR.hidden_size)
    assert memory.extra_bytes["critic_states_bytes"] == pytest.approx(16 * value_model)
    assert memory.total_bytes > memory.trained.total_bytes + 2 * n + 16 * value_model


def test_grpo_has_no_critic_and_its_kv_grows_with_the_group() -> None:
    small = RlSetup(algorithm=RlAlgorithm.GRPO, prompt_tokens=512, response_tokens=4096, prompts_per_gpu=4)
    group = RlSetup(algorithm=RlAlgorithm.GRPO, prompt_tokens=512, response_tokens=4096, prompts_per_gpu=4,
                    group_size=32)
    one = rl_memory(ACTOR, JOB, LAYOUT, small, capacity_bytes=CAPACITY)
    many = rl_memory(ACTOR, JOB, LAYOUT, group, capacity_bytes=CAPACITY)
    assert "critic_states_bytes" not in many.extra_bytes and "reward_model_bytes" not in many.extra_bytes
    kv = kv_cache_bytes(ACTOR, tokens_per_seq=4608, batch=128)
    training_peak = many.trained.activations_bytes + many.trained.workspace_bytes
    assert many.phase_swap_bytes == pytest.approx(max(0.0, kv - training_peak))
    assert many.total_bytes > one.total_bytes


def test_group_size_only_for_grpo() -> None:
    with pytest.raises(SpecError, match="group size 8 applies to GRPO"):
        RlSetup(algorithm=RlAlgorithm.PPO, prompt_tokens=1, response_tokens=1, group_size=8)


def test_distillation_adds_teacher_weights_and_logits() -> None:
    student, teacher = load_model("llama-3.2-1b"), load_model("llama-3.1-8b")
    memory = distillation_memory(student, teacher, JOB, LAYOUT, capacity_bytes=CAPACITY)
    assert memory.trained.total_bytes == training_memory(student, JOB, LAYOUT, capacity_bytes=CAPACITY).total_bytes
    assert memory.extra_bytes["teacher_weights_bytes"] == pytest.approx(2 * count_params(teacher).total)
    assert memory.extra_bytes["teacher_logits_bytes"] == 1024 * 128256 * 4


def test_distillation_needs_a_shared_vocabulary() -> None:
    with pytest.raises(SpecError, match="vocabulary"):
        distillation_memory(load_model("gpt2"), load_model("llama-3.1-8b"), JOB, LAYOUT, capacity_bytes=CAPACITY)
