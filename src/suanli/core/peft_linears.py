"""The linear projections of a model as transformers builds them, and which ones PEFT's ``target_modules`` selects.

Each block's linears (``layer_linears``) by their role names: q, k, v, o (a fused qkv where ``FUSED_QKV_TYPES``;
DeepSeek MLA's q_a/q_b and kv_a/kv_b latent projections, arXiv:2405.04434 §2.1), gate, up, down (a fused gate_up
where ``FUSED_GATE_UP_TYPES``), the state-space and linear-attention mixers' in_proj/out_proj, and for a mixture of
experts the fused expert tensors (one entry with a count of experts), the router and the shared experts. A
vision tower's linears and BERT's pooler carry no role: only ``"all-linear"`` reaches them. Identical projections
are merged with their count (``model_linears``); every LoRA-family, IA3 and BitFit count in ``core/peft.py``, the
frozen-base storage (``core/frozen_base.py``) and the PEFT activations (``core/activations_peft.py``) are sums
over these. Split out of ``core/peft.py``, which re-exports these names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from suanli.errors import SpecError
from suanli.spec.model import (
    Attention,
    GatedDeltaNet,
    KimiDeltaAttention,
    Layer,
    LightningAttention,
    Mamba2Mixer,
    Mixer,
    Mlp,
    ModelSpec,
    Moe,
    ShortConv,
)
from suanli.spec.vision import VisionTower

#: model_types whose transformers modules fuse q, k, v (GPT-2 c_attn, GPT-NeoX/Falcon query_key_value, Phi-3
#: qkv_proj) or gate and up (Phi-3, GLM-4 gate_up_proj) into one linear.
FUSED_QKV_TYPES = frozenset({"gpt2", "gpt_neox", "falcon", "phi3"})
FUSED_GATE_UP_TYPES = frozenset({"phi3", "glm4"})  # GLM-4 (0414) gate_up_proj too
#: model_types whose router is an ``nn.Linear`` in transformers 5 (elsewhere a bare weight), so all-linear reaches it
ROUTER_LINEAR_TYPES = frozenset({"llama4_text", "hunyuan_v1_moe", "longcat_flash"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Projection:
    """One linear projection as transformers builds it, and how many of it the model holds (layers × experts)."""

    name: str  # q k v o qkv q_a q_b kv_a kv_b gate up gate_up down router shared_gate pooler
    roles: frozenset[str]  # target names that select it
    in_features: int
    out_features: int
    bias: bool
    count: int
    component: str  # as in core.params: attention, mlp, experts, shared_experts, router, pooler
    expert: bool = False  # a routed expert's tensor or the router: adapted only when "experts" is targeted
    branches: int = 1  # LoRA rank multiple: 2 for the experts' fused gate_up (PEFT keeps r per gate and up)


_Row = tuple[str, frozenset[str], int, int, bool]  # name, roles, in, out, bias


def _row(name: str, roles: str, n_in: int, n_out: int, bias: bool) -> _Row:
    return name, frozenset(roles.split()), n_in, n_out, bias


def _attention_rows(a: Attention, hidden: int, fused: bool) -> list[_Row]:
    """Q, K, V (or one fused QKV) and O; MLA's latent projections as in DeepSeek-V2 (arXiv:2405.04434 §2.1).
    Qwen3-Next's gated attention (``output_gate``) draws its gate from q_proj, which is twice as wide."""
    q_width, kv_width = a.num_heads * a.head_dim * (1 + a.output_gate), a.num_kv_heads * a.head_dim
    out = _row("o", "o", a.num_heads * a.v_head_dim, hidden, a.out_bias)
    if a.mla is not None:
        m = a.mla
        q = [_row("q", "q", hidden, q_width, False)] if m.q_lora_rank is None else [
            _row("q_a", "q", hidden, m.q_lora_rank, a.qkv_bias), _row("q_b", "q", m.q_lora_rank, q_width, False)]
        kv_up = a.num_heads * (m.qk_nope_head_dim + a.v_head_dim)
        return [*q, _row("kv_a", "k v", hidden, m.kv_lora_rank + m.qk_rope_head_dim, a.qkv_bias),
                _row("kv_b", "k v", m.kv_lora_rank, kv_up, False), out]
    if fused:
        return [_row("qkv", "q k v", hidden, q_width + 2 * kv_width, a.qkv_bias), out]
    return [_row("q", "q", hidden, q_width, a.qkv_bias), _row("k", "k", hidden, kv_width, a.qkv_bias),
            _row("v", "v", hidden, kv_width, a.qkv_bias), out]


def _indexer_rows(a: Attention, hidden: int) -> list[_Row]:
    """DeepSeek-V3.2's lightning indexer: wq_b (query latent → heads·d), wk (h → d), weights_proj (h → heads);
    no role names them, so only all-linear adapts them."""
    if a.indexer is None:
        return []
    ix = a.indexer
    return [_row("index_q", "", ix.q_rank, ix.num_heads * ix.head_dim, False),
            _row("index_k", "", hidden, ix.head_dim, False), _row("index_weights", "", hidden, ix.num_heads, False)]


def _mlp_rows(m: Mlp, hidden: int, fused: bool) -> list[_Row]:
    """Gate and up (or one fused gate_up) and down; a plain MLP has up and down only."""
    i = m.intermediate_size
    down = _row("down", "down", i, hidden, m.bias)
    if not m.gated:
        return [_row("up", "up", hidden, i, m.bias), down]
    if fused:
        return [_row("gate_up", "gate up", hidden, 2 * i, m.bias), down]
    return [_row("gate", "gate", hidden, i, m.bias), _row("up", "up", hidden, i, m.bias), down]


def _mixer_rows(m: Mixer, hidden: int) -> list[_Row]:
    """Mamba's projections by their transformers names: in_proj and out_proj (Mamba-1 also x_proj, dt_proj)."""
    if isinstance(m, Mamba2Mixer):
        width = 2 * m.intermediate_size + 2 * m.n_groups * m.d_state + m.num_heads
        out_bias = m.proj_bias if m.out_bias is None else m.out_bias
        return [_row("in_proj", "in_proj", hidden, width, m.proj_bias),
                _row("out_proj", "out_proj", m.intermediate_size, hidden, out_bias)]
    if isinstance(m, GatedDeltaNet):  # in_proj_qkvz and in_proj_ba answer to "in_proj" here
        return [_row("in_proj_qkvz", "in_proj", hidden, 2 * m.key_dim + 2 * m.value_dim, False),
                _row("in_proj_ba", "in_proj", hidden, 2 * m.num_v_heads, False),
                _row("out_proj", "out_proj", m.value_dim, hidden, False)]
    if isinstance(m, KimiDeltaAttention):  # module names shared with attention: q_proj … o_proj answer to q … o
        width, d = m.num_heads * m.head_dim, m.head_dim
        return [_row("q_proj", "q", hidden, width, False), _row("k_proj", "k", hidden, width, False),
                _row("v_proj", "v", hidden, width, False), _row("f_a_proj", "", hidden, d, False),
                _row("f_b_proj", "", d, width, False), _row("b_proj", "", hidden, m.num_heads, False),
                _row("g_a_proj", "", hidden, d, False), _row("g_b_proj", "", d, width, False),
                _row("o_proj", "o", width, hidden, False)]
    if isinstance(m, LightningAttention):  # qkv_proj and output_gate answer to "in_proj" here
        width = m.num_heads * m.head_dim
        return [_row("qkv_proj", "in_proj", hidden, 3 * width, False),
                _row("output_gate", "in_proj", hidden, width, False),
                _row("out_proj", "out_proj", width, hidden, False)]
    if isinstance(m, ShortConv):
        return [_row("in_proj", "in_proj", hidden, 3 * m.channels, m.bias),
                _row("out_proj", "out_proj", m.channels, hidden, m.bias)]
    i = m.intermediate_size
    return [_row("in_proj", "in_proj", hidden, 2 * i, m.proj_bias),
            _row("x_proj", "x_proj", i, m.dt_rank + 2 * m.d_state, False),
            _row("dt_proj", "dt_proj", m.dt_rank, i, True),
            _row("out_proj", "out_proj", i, hidden, m.proj_bias)]


def layer_linears(layer: Layer, hidden: int, model_type: str) -> list[Projection]:
    """One block's linears as transformers builds them: attention, then the MLP, or the experts (one entry with
    ``count`` experts), router, shared experts and their gate."""
    def make(rows: list[_Row], component: str, count: int = 1, expert: bool = False) -> list[Projection]:
        return [Projection(name=name, roles=roles, in_features=n_in, out_features=n_out, bias=bias, count=count,
                           component=component, expert=expert, branches=2 if expert and name == "gate_up" else 1)
                for name, roles, n_in, n_out, bias in rows]

    linears = (make(_attention_rows(layer.attention, hidden, model_type in FUSED_QKV_TYPES), "attention")
               if layer.attention is not None else [])
    if layer.attention is not None and layer.attention.indexer is not None:
        linears += make(_indexer_rows(layer.attention, hidden), "attention")
    if layer.mixer is not None:
        linears += make(_mixer_rows(layer.mixer, hidden), "ssm")
    ffn = layer.ffn
    if ffn is None:
        return linears
    if not isinstance(ffn, Moe):
        return linears + make(_mlp_rows(ffn, hidden, model_type in FUSED_GATE_UP_TYPES), "mlp")
    linears += make(_mlp_rows(ffn.expert, hidden, True), "experts", ffn.num_experts, expert=True)
    scored = ffn.num_experts + ffn.zero_experts
    linears += make([_row("router", "", hidden, scored, ffn.router_bias)], "router",
                    expert=model_type not in ROUTER_LINEAR_TYPES)
    if ffn.shared is not None:
        linears += make(_mlp_rows(ffn.shared, hidden, False), "shared_experts")
    if ffn.shared_gate:
        linears += make([_row("shared_gate", "", hidden, 1, False)], "router")
    return linears


def vision_linears(t: VisionTower) -> list[Projection]:
    """A vision tower's nn.Linear modules, which PEFT's all-linear reaches too: each block's attention (Qwen's
    fused qkv) and MLP, and the projectors' matrices (not Gemma 3's bare projection weight). They carry no role,
    so only "all-linear" selects them; the patch convolution is not a linear."""
    rows: list[_Row] = []
    for layer in t.layers:
        if layer.attention is not None:
            rows += _attention_rows(layer.attention, t.hidden_size, t.fused_qkv)
        if isinstance(layer.ffn, Mlp):
            rows += _mlp_rows(layer.ffn, t.hidden_size, False)
    for p in t.projectors:
        if p.hidden_size is not None:
            rows += [_row("merger_in", "", p.in_size, p.hidden_size, p.bias),
                     _row("merger_out", "", p.hidden_size, p.out_size, p.bias)]
        elif p.linear:
            rows.append(_row("projector", "", p.in_size, p.out_size, p.bias))
    return [Projection(name=f"vision_{name}", roles=frozenset(), in_features=n_in, out_features=n_out, bias=bias,
                       count=1, component="vision") for name, _, n_in, n_out, bias in rows]


def selects(p: Projection, targets: frozenset[str]) -> bool:
    """Whether ``target_modules`` (role names, "all-linear", "experts") puts an adapter on ``p``."""
    return (not p.expert or "experts" in targets) and ("all-linear" in targets or bool(p.roles & targets))


def model_linears(spec: ModelSpec) -> tuple[Projection, ...]:
    """Every linear projection of the blocks (plus BERT's pooler), identical ones merged with their count."""
    merged: dict[Projection, int] = {}
    for layer, count in spec.layer_groups():
        for p in layer_linears(layer, spec.hidden_size, spec.model_type):
            merged[p] = merged.get(p, 0) + count * p.count
    if spec.pooler:
        h = spec.hidden_size
        merged[Projection(name="pooler", roles=frozenset(), in_features=h, out_features=h, bias=True, count=1,
                          component="pooler")] = 1
    for p in vision_linears(spec.vision) if spec.vision is not None else ():
        merged[p] = merged.get(p, 0) + 1
    return tuple(replace(p, count=n) for p, n in merged.items())


def targeted_linears(spec: ModelSpec, targets: Iterable[str]) -> tuple[Projection, ...]:
    """The projections ``target_modules`` selects (names in the module docstring); raises when none is."""
    wanted = frozenset(targets)
    if "experts" in wanted and "all-linear" not in wanted and len(wanted & {"gate", "up"}) == 1:
        raise SpecError(f"target_modules {sorted(wanted)} name one of gate/up with \"experts\"; transformers 5 fuses "
                        "each expert's gate and up into one tensor, so target both or neither",
                        key="error.core.lora_gate_up", fields={"targets": sorted(wanted)})
    linears = model_linears(spec)
    chosen = tuple(p for p in linears if selects(p, wanted))
    if not chosen:
        roles = sorted({role for p in linears for role in p.roles})
        raise SpecError(f"target_modules {sorted(wanted)} select no linear layer of {spec.name} (model_type "
                        f"{spec.model_type}); its projections answer to {roles}, \"experts\" and \"all-linear\"",
                        key="error.core.lora_targets_none",
                        fields={"targets": sorted(wanted), "name": spec.name, "model_type": spec.model_type,
                                "roles": roles})
    return chosen
