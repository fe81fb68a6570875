"""What the serving exports share: the plan, the engine settings the simulator used, and GPU placement.

The settings are resolved exactly as ``simulate()`` resolves them (``EngineKnobs.apply`` then
``engine_setting``), so the exported server runs with the memory fraction, batch limits and block size that
the estimate assumed rather than whatever defaults the installed version has.
"""

from __future__ import annotations

from dataclasses import dataclass

from suanli.core.inference_memory import engine_setting
from suanli.errors import SpecError
from suanli.simulate.api import Deployment
from suanli.spec.engines import EnginePreset
from suanli.spec.model import ModelSpec
from suanli.spec.precision import Family, NumberFormat


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingPlan:
    """A deployment of ``spec`` to export; ``model_id`` is what the server loads (Hub repo id or path) and
    ``max_model_len`` the longest request it must take (default: the model's context)."""

    spec: ModelSpec
    deployment: Deployment
    model_id: str
    max_model_len: int | None = None
    gpus_per_node: int = 8

    def __post_init__(self) -> None:
        if self.max_model_len is not None and self.max_model_len < 1:
            raise SpecError(f"max_model_len must be positive, got {self.max_model_len}",
                            key="error.export.max_model_len", fields={"max_model_len": self.max_model_len})
        if self.gpus_per_node < 1:
            raise SpecError(f"gpus_per_node must be at least 1, got {self.gpus_per_node}",
                            key="error.export.gpus_per_node", fields={"gpus_per_node": self.gpus_per_node})


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    """The engine's effective settings for this deployment (None: the engine decides)."""

    engine: EnginePreset
    memory_fraction: float
    max_num_seqs: int | None
    chunk_tokens: int | None
    block_size: int
    max_model_len: int


def settings(plan: ServingPlan, target: str) -> EngineSettings:
    """The settings the simulator used, after checking the deployment was estimated for ``target``'s engine."""
    d = plan.deployment
    if not d.engine.key.startswith(target):
        raise SpecError(f"this deployment was estimated for {d.engine.key}, whose memory fraction and batch "
                        f"limits differ from {target}'s; estimate it with --engine {target} to export {target}",
                        key="error.export.engine_mismatch", fields={"engine": d.engine.key, "target": target})
    engine = d.knobs.apply(d.engine)
    setting = engine_setting(engine, d.accelerator, tp=d.tp)
    return EngineSettings(engine=engine, memory_fraction=round(setting.memory_fraction, 4),
                          max_num_seqs=setting.max_num_seqs, chunk_tokens=setting.chunk_tokens,
                          block_size=engine.block_size,
                          max_model_len=plan.max_model_len or plan.spec.max_position_embeddings)


def weight_method(fmt: NumberFormat | None, names: dict[str, str]) -> tuple[str | None, str | None]:
    """(dtype, quantization method) for a weight format, under an engine's names; (None, None) when the
    checkpoint decides. ``names`` maps our family/format words to the engine's ``--quantization`` choices."""
    if fmt is None:
        return None, None
    if fmt.key in ("bf16", "fp16", "fp32"):
        return {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[fmt.key], None
    if fmt.key.startswith("fp8"):
        return None, names.get("fp8")
    family = {Family.AWQ: "awq", Family.GPTQ: "gptq", Family.NF4: "nf4"}.get(fmt.family)
    if family is None and fmt.key.startswith("mxfp4"):
        family = "mxfp4"
    return None, names.get(family) if family else None


def kv_fp8(fmt: NumberFormat | None) -> bool:
    return fmt is not None and fmt.key.startswith("fp8")


def instance_gpus(plan: ServingPlan, index: int) -> tuple[int, str]:
    """(node, CUDA_VISIBLE_DEVICES) of engine instance ``index``, each instance ``tp`` consecutive GPUs, packed
    onto nodes of ``gpus_per_node``; an instance wider than a node spans several (its devices start at 0)."""
    tp, per_node = plan.deployment.tp, plan.gpus_per_node
    if tp >= per_node:
        return index * -(-tp // per_node), ",".join(str(i) for i in range(per_node))
    per = per_node // tp
    node, slot = divmod(index, per)
    return node, ",".join(str(slot * tp + i) for i in range(tp))


@dataclass(frozen=True, slots=True)
class Instance:
    """One server of a disaggregated deployment: its place among all instances (prefill first), its role, its rank
    within the role, its port (the role's base port + rank), and its node and CUDA_VISIBLE_DEVICES."""

    index: int
    prefill: bool
    rank: int
    port: int
    node: int
    devices: str


def pd_instances(plan: ServingPlan, prefill: int, decode: int, *, prefill_port: int,
                 decode_port: int) -> list[Instance]:
    """The ``prefill`` prefill instances, then the ``decode`` decode ones, placed by ``instance_gpus``."""
    out: list[Instance] = []
    for index in range(prefill + decode):
        first = index < prefill
        rank = index if first else index - prefill
        node, devices = instance_gpus(plan, index)
        out.append(Instance(index, first, rank, (prefill_port if first else decode_port) + rank, node, devices))
    return out


def placement_notes(plan: ServingPlan, instances: int) -> list[str]:
    """When the instances need more than one node, say which lines go where."""
    tp, per_node = plan.deployment.tp, plan.gpus_per_node
    nodes = instances * -(-tp // per_node) if tp >= per_node else -(-instances // (per_node // tp))
    if nodes <= 1:
        return []
    return [f"the {instances} instances need {nodes} nodes of {plan.gpus_per_node} GPUs: start each one on the node "
            "its comment names and replace localhost / 127.0.0.1 with that node's address"]


def unsupported_format_note(fmt: NumberFormat | None, method: str | None, engine: str) -> list[str]:
    if fmt is None or method is not None or fmt.key in ("bf16", "fp16", "fp32"):
        return []
    return [f"{engine} has no on-the-fly switch for {fmt.key} weights: serve a checkpoint quantized to "
            f"{fmt.key} (the engine reads its quantization_config)"]
