"""Memory of jobs that keep more than one model on the GPU: RL fine-tuning and distillation.

PPO for RLHF (Ouyang et al. 2022, arXiv:2203.02155; DeepSpeed-Chat, OpenRLHF, TRL) keeps four models
resident: the trained **actor**, a frozen **reference** copy of it (for the KL penalty), a frozen **reward**
model, and a trained **critic** (value model, usually initialised from the reward model). GRPO (Shao et al.
2024, arXiv:2402.03300 §4) drops the critic and scores a group of G sampled responses per prompt; its reward
is often a rule, so the reward model is optional. DPO (Rafailov et al. 2023) needs only the policy and a frozen
reference, and no generation.

Each step alternates two phases that do not coexist: **generation** (rollouts: the actor's KV cache for
prompts × G sequences of prompt + response tokens) and **training** (the actor's, then the critic's, saved
activations). Per GPU, with every model laid out like the actor (colocated, as DeepSpeed-Chat's hybrid engine
and TRL do)::

    total = actor states + critic states + reference + reward + max(training activations, rollout KV cache)

Reward and critic models replace the LM head with a scalar value head (hidden → 1).

Distillation (Hinton et al. 2015) trains a student against a frozen teacher's output distribution: the
teacher's weights and its logits for the batch (fp32 for the softmax of the KL term) sit beside the student's
training memory; the teacher's forward keeps no activations (no gradient flows through it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from suanli.core.kv_cache import kv_cache_bytes
from suanli.core.memory import TrainingMemory, training_memory
from suanli.core.placement import stage_params
from suanli.errors import SpecError, require_positive
from suanli.i18n import Text
from suanli.spec.layout import Layout
from suanli.spec.model import ModelSpec
from suanli.spec.training import TrainingJob

FROZEN_BYTES_PER_PARAM = 2.0  # frozen models are held in bf16
FP32_BYTES = 4.0


class RlAlgorithm(Enum):
    PPO = "ppo"
    GRPO = "grpo"
    DPO = "dpo"


@dataclass(frozen=True, slots=True, kw_only=True)
class RlSetup:
    """An RL fine-tuning step: rollout shape and the auxiliary models (None: the actor's architecture for
    the critic and reward model under PPO; no reward model under GRPO/DPO unless given)."""

    algorithm: RlAlgorithm
    prompt_tokens: int
    response_tokens: int
    prompts_per_gpu: int = 1
    group_size: int = 1  # GRPO: responses sampled per prompt
    reward_model: ModelSpec | None = None
    critic_model: ModelSpec | None = None

    def __post_init__(self) -> None:
        require_positive("prompt tokens", self.prompt_tokens)
        require_positive("response tokens", self.response_tokens)
        require_positive("prompts per GPU", self.prompts_per_gpu)
        require_positive("group size", self.group_size, fix=Text("fix.core.group_size"))
        if self.group_size > 1 and self.algorithm is not RlAlgorithm.GRPO:
            raise SpecError(f"group size {self.group_size} applies to GRPO; {self.algorithm.value} samples one "
                            "response per prompt", key="error.core.group_size_not_grpo",
                            fields={"group_size": self.group_size, "algorithm": self.algorithm.value})

    @property
    def seq(self) -> int:
        return self.prompt_tokens + self.response_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class MultiModelMemory:
    """The trained model's memory plus the other resident models, per GPU."""

    trained: TrainingMemory
    extra_bytes: dict[str, float]  # named components beyond the trained model's
    phase_swap_bytes: float  # generation KV beyond training activations (0 when training is the peak)

    @property
    def total_bytes(self) -> float:
        return self.trained.total_bytes + sum(self.extra_bytes.values()) + self.phase_swap_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.trained.capacity_bytes

    @property
    def headroom_bytes(self) -> float:
        return self.trained.capacity_bytes - self.total_bytes


def with_value_head(spec: ModelSpec) -> ModelSpec:
    """A reward or critic model: the same trunk with a scalar head instead of the LM head."""
    return replace(spec, name=f"{spec.name} (value head)", lm_head=False, pooler=False)


def frozen_weights_bytes(spec: ModelSpec, layout: Layout, bytes_per_param: float = FROZEN_BYTES_PER_PARAM) -> float:
    """A frozen model on the most loaded GPU of ``layout``: split like the trained model, and sharded over
    data-parallel ranks under ZeRO-3 (DeepSpeed-Chat shards the reference and reward models that way)."""
    params = max(stage.params for stage in stage_params(spec, layout))
    shards = layout.zero_shards if layout.zero >= 3 else 1
    return params * bytes_per_param / shards + (spec.hidden_size if not spec.lm_head else 0.0)


def rl_memory(actor: ModelSpec, job: TrainingJob, layout: Layout, rl: RlSetup, *,
              capacity_bytes: float) -> MultiModelMemory:
    """Per-GPU memory of one RL fine-tuning step (see the module docstring for what is resident)."""
    job = replace(job, seq=rl.seq)
    trained = training_memory(actor, job, layout, capacity_bytes=capacity_bytes)
    extra = {"reference_bytes": frozen_weights_bytes(actor, layout)}
    reward = rl.reward_model or (actor if rl.algorithm is RlAlgorithm.PPO else None)
    if reward is not None:
        extra["reward_model_bytes"] = frozen_weights_bytes(with_value_head(reward), layout)
    activations = trained.activations_bytes + trained.workspace_bytes
    if rl.algorithm is RlAlgorithm.PPO:
        critic = with_value_head(rl.critic_model or reward or actor)
        critic_memory = training_memory(critic, job, layout, capacity_bytes=capacity_bytes)
        extra["critic_states_bytes"] = critic_memory.model_states_bytes
        activations = max(activations, critic_memory.activations_bytes + critic_memory.workspace_bytes)
        extra["critic_extra_activations_bytes"] = activations - trained.activations_bytes - trained.workspace_bytes
    if rl.algorithm is RlAlgorithm.DPO:
        return MultiModelMemory(trained=trained, extra_bytes=extra, phase_swap_bytes=0.0)
    rollouts = rl.prompts_per_gpu * rl.group_size
    kv = kv_cache_bytes(actor, tokens_per_seq=rl.seq, batch=rollouts, tp=layout.tp)
    extra_kv = max(0.0, kv - activations)
    return MultiModelMemory(trained=trained, extra_bytes=extra, phase_swap_bytes=extra_kv)


def distillation_memory(student: ModelSpec, teacher: ModelSpec, job: TrainingJob, layout: Layout, *,
                        capacity_bytes: float, teacher_bytes_per_param: float = FROZEN_BYTES_PER_PARAM
                        ) -> MultiModelMemory:
    """Student training plus the frozen teacher's weights and its fp32 output distribution for the batch."""
    if teacher.vocab_size != student.vocab_size:
        raise SpecError(f"teacher vocabulary ({teacher.vocab_size}) differs from the student's "
                        f"({student.vocab_size}); logit distillation needs a shared tokenizer",
                        key="error.core.distill_vocab", fields={"teacher": teacher.vocab_size,
                                                                "student": student.vocab_size})
    trained = training_memory(student, job, layout, capacity_bytes=capacity_bytes)
    tokens = layout.micro_batch * job.seq / layout.cp
    extra = {"teacher_weights_bytes": frozen_weights_bytes(teacher, layout, teacher_bytes_per_param),
             "teacher_logits_bytes": tokens * teacher.vocab_size / layout.tp * FP32_BYTES}
    return MultiModelMemory(trained=trained, extra_bytes=extra, phase_swap_bytes=0.0)
