"""Which parameters one GPU holds under tensor, pipeline and expert parallelism.

Megatron-LM's placement (Shoeybi et al. 2019 §3; Narayanan et al. 2021 §2; Megatron-core MoE docs):

- tensor parallelism splits every attention and MLP matrix ``tp`` ways (column- then row-parallel); K/V
  projections are replicated when ``tp`` exceeds the KV heads (each rank keeps at least one head); norms and
  row-parallel biases are replicated; the embedding and output head are split along the vocabulary;
- pipeline parallelism gives each stage ``L / pp`` consecutive layers (the first stages take one more when
  it does not divide); the first stage also holds the embedding, the last the final norm and output head,
  and with tied embeddings the last stage keeps its own copy of the embedding matrix;
- routed experts are split over ``ep`` ranks and, inside each expert, ``tp`` ways (expert tensor parallel
  size = tp, Megatron-core's default); the router is replicated.
"""

from __future__ import annotations

from dataclasses import dataclass

from suanli.core.params import attention_params, layer_components, mlp_params, outer_components
from suanli.core.vision import vision_params
from suanli.quantity import plain
from suanli.spec.layout import Layout
from suanli.spec.model import Layer, ModelSpec, Moe


@dataclass(frozen=True, slots=True, kw_only=True)
class StageParams:
    """Parameters one GPU of pipeline stage ``stage`` holds."""

    stage: int
    layers: tuple[int, ...]  # indices of the layers on this stage
    params: float
    block_params: float  # the part inside transformer blocks (what PEFT adapters attach to)


def stage_layers(num_layers: int, pp: int, vp: int = 1) -> list[tuple[int, ...]]:
    """Layer indices per pipeline rank; with ``vp`` interleaved chunks a rank holds chunks r, r+pp, …"""
    chunks = pp * vp
    base, extra = divmod(num_layers, chunks)
    bounds, start = [], 0
    for chunk in range(chunks):
        size = base + (1 if chunk < extra else 0)
        bounds.append(tuple(range(start, start + size)))
        start += size
    return [tuple(i for chunk in range(rank, chunks, pp) for i in bounds[chunk]) for rank in range(pp)]


def layer_params_per_gpu(layer: Layer, hidden_size: int, tp: int, ep: int) -> float:
    """One block's parameters on one GPU under tensor and expert parallelism."""
    parts = layer_components(layer, hidden_size, plain)
    attention = layer.attention
    per_gpu = parts.get("ssm", 0.0) / tp  # Mamba heads (and their conv channels) split across TP ranks
    if attention is None:
        pass
    elif attention.mla is None and tp > attention.num_kv_heads:
        projections = attention_params(attention, hidden_size, plain, matmul_only=True)
        kv_width = 2 * attention.num_kv_heads * attention.head_dim * hidden_size
        per_gpu += (projections - kv_width) / tp + kv_width / attention.num_kv_heads
        per_gpu += parts["attention"] - projections  # biases and q/k norms, replicated
    else:
        per_gpu += parts["attention"] / tp
    per_gpu += parts["norms"] + parts.get("router", 0.0)
    per_gpu += (parts.get("mlp", 0.0) + parts.get("shared_experts", 0.0)) / tp
    per_gpu += parts.get("experts", 0.0) / (tp * ep)
    return per_gpu


def stage_params(spec: ModelSpec, layout: Layout) -> list[StageParams]:
    """Parameters per GPU on every pipeline stage (the largest is the one that decides fitting)."""
    outer = outer_components(spec, plain)
    embedding = (outer["embedding"]) / layout.tp
    head = outer.get("lm_head", 0.0) / layout.tp
    per_group = [layer_params_per_gpu(layer, spec.hidden_size, layout.tp, layout.ep)
                 for layer, _ in spec.layer_groups()]
    group_of = spec.group_of_layers()
    stages = []
    for rank, layers in enumerate(stage_layers(spec.num_layers, layout.pp, layout.vp)):
        blocks = sum(per_group[group_of[i]] for i in layers)
        params = blocks
        if rank == 0:
            params += embedding + outer.get("position_embedding", 0.0) + outer.get("pooler", 0.0)
            params += vision_params(spec.vision) / layout.tp if spec.vision is not None else 0.0  # VLM tower
        if rank == layout.pp - 1:
            params += head + outer.get("norms", 0.0)
            if spec.tie_word_embeddings and spec.lm_head and layout.pp > 1:
                params += embedding  # the last stage's copy of a tied embedding
        stages.append(StageParams(stage=rank, layers=layers, params=params, block_params=blocks))
    return stages


def expert_params_per_gpu(spec: ModelSpec, layers: tuple[int, ...], layout: Layout) -> float:
    """Routed-expert parameters on one GPU of a stage (these are sharded over ep, not over dp)."""
    total = 0.0
    for i in layers:
        ffn = spec.layers[i].ffn
        if isinstance(ffn, Moe):
            total += ffn.num_experts * mlp_params(ffn.expert, spec.hidden_size, plain)
    return total / (layout.tp * layout.ep)
