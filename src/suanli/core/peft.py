"""Trainable parameters of each fine-tuning method, and how QLoRA stores the frozen base, as HF PEFT builds them.

Checked parameter for parameter against PEFT 0.21 on transformers 5 (``tests/reference/test_peft_vs_hf_peft.py``):

==============  ===================================================================================================
method          trainable parameters
==============  ===================================================================================================
full            every parameter
lora, qlora     r·(in + out) per targeted linear (Hu et al. 2021, arXiv:2106.09685 §4.1); QLoRA stores the frozen
                block linears in NF4 with double quantization (Dettmers et al. 2023, arXiv:2305.14314 §3)
dylora          LoRA at its maximum rank: every smaller rank is a slice of it (Valipour et al. 2023, arXiv:2210.07558)
dora            LoRA + a magnitude vector of out per targeted linear (Liu et al. 2024, arXiv:2402.09353 §4.1)
adalora         r·(in + out) + r + 1 per targeted linear: P, Q, the singular values Λ at the initial (maximum) rank
                (Zhang et al. 2023, arXiv:2303.10512 §3.1) and PEFT's rank counter ``ranknum``, which PEFT 0.21
                leaves trainable
prefix-tuning   n·Σ_layers (k width + v width) (Li & Liang 2021, arXiv:2101.00190), sized like PEFT by
                num_key_value_heads·head_dim. With PEFT's reparameterisation MLP (``prefix_projection``):
                n·d + (d·e + e) + (e·P + P), d one layer's k width, e ``encoder_hidden_size`` (default d), P = Σ 2d
p-tuning-v2     deep prompts on every layer: prefix tuning without the MLP (Liu et al. 2022, arXiv:2110.07602 §3)
prompt-tuning   n·hidden (Lester et al. 2021, arXiv:2104.08691 §2)
adapter         2 per block, each h·m + m (down) + m·h + h (up) (Houlsby et al. 2019, arXiv:1902.00751 §2.1)
bitfit          every bias, LayerNorm biases included (Ben Zaken et al. 2022, arXiv:2106.10199), and the state-space
                mixers' conv1d biases and per-head ``dt_bias``
ia3             one vector per targeted linear, of its out width, or of its in width for feed-forward targets
                (Liu et al. 2022, arXiv:2205.05638 §3.3); PEFT's defaults per model_type (llama: k, v, down's input)
==============  ===================================================================================================

``PeftConfig.target_modules`` selects projections by role: q, k, v, o, gate, up, down. A fused linear (GPT-2's
c_attn, Phi-3's qkv_proj and gate_up_proj) is adapted once when any of its roles is named; MLA's kv_a/kv_b answer to
k and v. ``"experts"`` adds the routed experts: transformers 5 stores them as one gate_up [E, 2i, h] and one down
[E, h, i] tensor per layer, and PEFT gives each expert rank r on down and rank 2r on the fused gate_up (the rank of
separate gate and up adapters together: ``convert_peft_config_for_transformers``). ``"all-linear"`` is PEFT's: every
nn.Linear/Conv1D but the output head (so BERT's pooler and Qwen2-MoE's shared-expert gate), and with ``"experts"``
the experts and the router, as PEFT does for Mixtral, Qwen3-MoE and DeepSeek. Like PEFT, LoRA-family methods
refuse a Mamba mixer's out_proj on the model_types in ``PEFT_MAMBA_TYPES`` (all-linear included).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from suanli.core.params import count_params, linear_params
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
    Norm,
    NormKind,
    ShortConv,
)
from suanli.spec.precision import parse_number_format
from suanli.spec.training import Method, TrainingJob
from suanli.spec.vision import VisionTower

#: model_types whose transformers modules fuse q, k, v (GPT-2 c_attn, GPT-NeoX/Falcon query_key_value, Phi-3
#: qkv_proj) or gate and up (Phi-3, GLM-4 gate_up_proj) into one linear.
FUSED_QKV_TYPES = frozenset({"gpt2", "gpt_neox", "falcon", "phi3"})
FUSED_GATE_UP_TYPES = frozenset({"phi3", "glm4"})  # GLM-4 (0414) gate_up_proj too
#: model_types whose router is an ``nn.Linear`` in transformers 5 (elsewhere a bare weight), so all-linear reaches it
ROUTER_LINEAR_TYPES = frozenset({"llama4_text", "hunyuan_v1_moe", "longcat_flash"})
#: model_types on which PEFT 0.21 refuses LoRA-like adapters (LoRA, DoRA, QLoRA, AdaLoRA) on a Mamba mixer's
#: ``out_proj`` (and ``conv1d``, never a linear here): ``_check_lora_target_modules_mamba`` in
#: peft/tuners/tuners_utils.py raises for every matched module of those names, all-linear's included.
PEFT_MAMBA_TYPES = frozenset({"falcon_h1", "mamba", "mamba2", "falcon_mamba", "nemotron_h"})

#: PEFT 0.21 IA3 defaults (TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING, ..._FEEDFORWARD_MODULES_MAPPING) as
#: (target roles, feed-forward roles). A fused query_key_value/c_attn answers to "q"; BERT's "output.dense" matches
#: the attention output and the MLP down alike.
IA3_DEFAULTS: Mapping[str, tuple[frozenset[str], frozenset[str]]] = MappingProxyType({
    **dict.fromkeys(("llama", "mistral", "mixtral"), (frozenset({"k", "v", "down"}), frozenset({"down"}))),
    **dict.fromkeys(("gemma", "gemma2", "gemma3_text", "qwen2", "qwen3"),
                    (frozenset({"q", "v", "down"}), frozenset({"down"}))),
    **dict.fromkeys(("gpt2", "gpt_neox", "falcon"), (frozenset({"q", "down"}), frozenset({"down"}))),
    "opt": (frozenset({"q", "k", "down"}), frozenset({"down"})),
    "bert": (frozenset({"k", "v", "o", "down"}), frozenset({"o", "down"})),
})
#: IA3 as the paper defines it (rescale keys, values and the feed-forward's inner activation), for other types.
IA3_PAPER = (frozenset({"k", "v", "down"}), frozenset({"down"}))

_LORA_FAMILY = frozenset({Method.LORA, Method.QLORA, Method.DORA, Method.DYLORA, Method.ADALORA})


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


@dataclass(frozen=True, slots=True, kw_only=True)
class PeftParams:
    """What a fine-tuning method trains and what stays frozen.

    ``total`` (trainable + frozen) is what PEFT's ``get_nb_trainable_parameters`` calls all_param.
    ``frozen_bytes`` is set where the method fixes how the frozen base is stored (QLoRA: NF4 block linears, bf16
    rest, ``quantized_params`` of them in NF4); otherwise it follows the job's precision mode and is None.
    """

    method: Method
    trainable: int
    frozen: int
    trainable_by_component: Mapping[str, int]
    adapted_linears: int = 0  # linear layers carrying an adapter, each expert counted
    quantized_params: int = 0
    frozen_bytes: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.trainable + self.frozen

    @property
    def trainable_fraction(self) -> float:
        return self.trainable / self.total


# ---- the linears of a model ------------------------------------------------------------------------------------

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


def vision_bias_params(t: VisionTower) -> int:
    """BitFit on a vision tower, beyond its linears' biases: the patch convolution's and the LayerNorms'."""
    norms = [n for layer in t.layers for n in layer.norms] + list(t.norms)
    norms += [p.norm for p in t.projectors if p.norm is not None]
    return (t.hidden_size if t.patch.bias else 0) + sum(_norm_bias(n) for n in norms)


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
                        "each expert's gate and up into one tensor, so target both or neither")
    linears = model_linears(spec)
    chosen = tuple(p for p in linears if selects(p, wanted))
    if not chosen:
        roles = sorted({role for p in linears for role in p.roles})
        raise SpecError(f"target_modules {sorted(wanted)} select no linear layer of {spec.name} (model_type "
                        f"{spec.model_type}); its projections answer to {roles}, \"experts\" and \"all-linear\"")
    return chosen


# ---- trainable parameters, per method --------------------------------------------------------------------------


def _add(parts: dict[str, int], component: str, value: int) -> None:
    parts[component] = parts.get(component, 0) + value


def lora_params(p: Projection, rank: int, method: Method = Method.LORA) -> int:
    """Adapter parameters on all ``p.count`` copies of one projection: r·(in + out), with r·branches for a fused
    expert gate_up; DoRA adds the magnitude (out), AdaLoRA Λ (r) and ``ranknum`` (1)."""
    r = rank * p.branches
    extra = p.out_features if method is Method.DORA else r + 1 if method is Method.ADALORA else 0
    return p.count * (r * (p.in_features + p.out_features) + extra)


def _lora_family(spec: ModelSpec, job: TrainingJob, base: int) -> PeftParams:
    method = job.method
    chosen = targeted_linears(spec, job.peft.target_modules)
    if method in (Method.DORA, Method.ADALORA) and any(p.expert for p in chosen):
        raise SpecError(f"HF PEFT applies {method.value} to nn.Linear layers only, not to the experts' fused "
                        "tensors or the router; drop \"experts\" from target_modules, or use lora")
    if spec.model_type in PEFT_MAMBA_TYPES and any(p.name == "out_proj" for p in chosen):
        raise SpecError(f"HF PEFT refuses {method.value} on the Mamba mixers' out_proj of model_type "
                        f"{spec.model_type} (_check_lora_target_modules_mamba; all-linear selects it too); target "
                        "in_proj and the attention/MLP projections instead, e.g. --lora-targets "
                        "in_proj,q,k,v,o,up,down")
    parts: dict[str, int] = {}
    for p in chosen:
        _add(parts, p.component, lora_params(p, job.peft.rank, method))
    adapted = sum(p.count for p in chosen)
    result = PeftParams(method=method, trainable=sum(parts.values()), frozen=base, trainable_by_component=parts,
                        adapted_linears=adapted, notes=_lora_notes(spec, job, chosen))
    if method is not Method.QLORA:
        return result
    quantized, frozen_bytes = qlora_frozen_storage(spec)
    return replace(result, quantized_params=quantized, frozen_bytes=frozen_bytes)


def _lora_notes(spec: ModelSpec, job: TrainingJob, chosen: tuple[Projection, ...]) -> tuple[str, ...]:
    notes = []
    if spec.is_moe and not any(p.expert for p in chosen):
        notes.append("routed experts carry no adapter; add \"experts\" to target_modules to adapt them")
    if job.method is Method.DYLORA:
        notes.append("DyLoRA trains one adapter at the maximum rank; every smaller rank is a slice of it")
    if job.method is Method.ADALORA:
        notes.append("AdaLoRA starts at rank r (PEFT init_r) and masks singular values toward target_r; the "
                     "parameters stay allocated, so memory holds the initial rank")
    if job.method is Method.QLORA and spec.is_moe:
        notes.append("experts counted in NF4; transformers 5 with bitsandbytes leaves the fused 3-D expert "
                     "tensors in bf16 (bitsandbytes issue #1849)")
    return tuple(notes)


def qlora_frozen_storage(spec: ModelSpec) -> tuple[int, float]:
    """(parameters stored in NF4, bytes of the whole frozen base) under QLoRA.

    bitsandbytes (transformers' ``replace_with_bnb_linear``) stores each block linear's weight in NF4 with double
    quantization, bits counted by ``NumberFormat.tensor_bits`` (4 per weight, an 8-bit absmax per 64, an fp32 per
    256 absmax, one fp32 offset). Embeddings, norms, biases, routers and the output head stay in bf16
    (``get_keys_to_not_convert``). Dettmers et al. 2023, arXiv:2305.14314 §3.
    """
    nf4, bf16 = parse_number_format("nf4"), parse_number_format("bf16")
    quantized, nf4_bits = 0, 0.0
    for p in model_linears(spec):
        if p.name != "router":
            quantized += p.count * p.in_features * p.out_features
            nf4_bits += p.count * nf4.tensor_bits(out_features=p.out_features, in_features=p.in_features)
    rest = count_params(spec).total - quantized
    return quantized, nf4_bits / 8 + rest * bf16.bytes_per_param


def _kv_width(a: Attention) -> int:
    """Key plus value width one layer caches per token (MLA: the decompressed per-head k and v)."""
    return a.num_kv_heads * (a.head_dim + a.v_head_dim)


def prefix_params(spec: ModelSpec, num_virtual_tokens: int, *, projection: bool = False,
                  encoder_hidden_size: int | None = None) -> int:
    """PEFT's ``PrefixEncoder``: an n × Σ(k + v width) table, or with ``projection`` an n × d table through
    Linear(d, e) → tanh → Linear(e, Σ(k + v width)), d one layer's k width."""
    width = sum(_kv_width(layer.attention) * count for layer, count in spec.layer_groups()
                if layer.attention is not None)
    if not projection:
        return num_virtual_tokens * width
    first = spec.first_attention
    if first is None:
        raise SpecError(f"{spec.name} has no attention layers: prefix tuning needs keys and values to prefix")
    d = _kv_width(first) // 2
    e = encoder_hidden_size or d
    return num_virtual_tokens * d + int(linear_params(d, e, True)) + int(linear_params(e, width, True))


def adapter_params(spec: ModelSpec, adapter_size: int) -> int:
    """Houlsby et al. 2019 (arXiv:1902.00751 §2.1): two bottleneck adapters per block, after attention and after
    the feed-forward, each Linear(h, m) + Linear(m, h) with biases. The paper also tunes the LayerNorms; those are
    not counted here."""
    h = spec.hidden_size
    return 2 * spec.num_layers * int(linear_params(h, adapter_size, True) + linear_params(adapter_size, h, True))


def _ia3(spec: ModelSpec, base: int) -> PeftParams:
    """One learned vector per targeted linear: its out width, or its in width for a feed-forward target."""
    targets, feedforward = IA3_DEFAULTS.get(spec.model_type, IA3_PAPER)
    parts: dict[str, int] = {}
    chosen = [p for p in model_linears(spec) if p.roles & targets]
    for p in chosen:
        _add(parts, p.component, p.count * (p.in_features if p.roles & feedforward else p.out_features))
    notes: tuple[str, ...] = () if spec.model_type in IA3_DEFAULTS else (
        f"HF PEFT has no IA3 default for model_type {spec.model_type}; counted on the paper's keys, values and "
        "feed-forward input (Liu et al. 2022)",)
    if spec.is_moe:
        notes += ("IA3 counted on every routed expert's down input; PEFT's IA3 reaches nn.Linear layers only, "
                  "which transformers 5 experts are not",)
    return PeftParams(method=Method.IA3, trainable=sum(parts.values()), frozen=base, trainable_by_component=parts,
                      adapted_linears=sum(p.count for p in chosen), notes=notes)


def _norm_bias(norm: Norm | None) -> int:
    return norm.size if norm is not None and norm.kind is NormKind.LAYER_NORM and norm.bias else 0


def _mixer_bias(m: Mixer) -> int:
    """A token mixer's biases beyond its linears': the causal conv1d's (one per channel, when it has one) and the
    per-head ``dt_bias`` of Mamba-2 and Gated DeltaNet: Mamba-1's ``dt_proj`` bias moved out of the projection,
    added to dt before the softplus (transformers' ``Mamba2Mixer``, ``Qwen3NextGatedDeltaNet``)."""
    if isinstance(m, Mamba2Mixer):
        return m.conv_dim * m.conv_bias + m.num_heads
    if isinstance(m, GatedDeltaNet):  # its conv1d has no bias
        return m.num_v_heads
    if isinstance(m, KimiDeltaAttention):  # the forget gate's dt_bias, one per channel; no conv bias
        return m.num_heads * m.head_dim
    if isinstance(m, ShortConv):
        return m.channels * m.bias
    if isinstance(m, LightningAttention):
        return 0
    return m.intermediate_size * m.conv_bias


def bias_params(spec: ModelSpec) -> dict[str, int]:
    """Every bias, by component: the linears' (router and pooler included), the LayerNorms', the output head's,
    the token mixers' conv1d and ``dt_bias``."""
    parts: dict[str, int] = {}
    for p in model_linears(spec):
        _add(parts, p.component, p.count * p.out_features * p.bias)
    for layer, count in spec.layer_groups():
        _add(parts, "norms", count * sum(_norm_bias(n) for n in layer.norms))
        if layer.mixer is not None:
            _add(parts, "ssm", count * _mixer_bias(layer.mixer))
        if layer.attention is not None and layer.attention.indexer is not None:  # the index key's LayerNorm
            _add(parts, "attention", count * layer.attention.indexer.head_dim)
    _add(parts, "norms", _norm_bias(spec.final_norm) + _norm_bias(spec.embedding_norm))
    _add(parts, "lm_head", spec.vocab_size * (spec.lm_head and spec.lm_head_bias))
    if spec.vision is not None:
        _add(parts, "vision", vision_bias_params(spec.vision))
    return {k: v for k, v in parts.items() if v}


def _bitfit(spec: ModelSpec, base: int) -> PeftParams:
    parts = bias_params(spec)
    notes = () if parts else (f"{spec.name} has no bias terms (bias-free linears, RMSNorm), so BitFit trains "
                              "nothing; use lora or ia3",)
    trainable = sum(parts.values())
    return PeftParams(method=Method.BITFIT, trainable=trainable, frozen=base - trainable,
                      trainable_by_component=parts, notes=notes)


def _new_modules(spec: ModelSpec, job: TrainingJob, base: int, *, projection: bool,
                 encoder_hidden_size: int | None) -> PeftParams:
    n = job.peft.num_virtual_tokens
    notes: tuple[str, ...] = ()
    if job.method is Method.PROMPT_TUNING:
        component, trainable = "prompt", n * spec.hidden_size
    elif job.method is Method.ADAPTER:
        component, trainable = "adapters", adapter_params(spec, job.peft.adapter_size)
    else:
        use_mlp = projection and job.method is Method.PREFIX_TUNING
        component = "prefix"
        trainable = prefix_params(spec, n, projection=use_mlp, encoder_hidden_size=encoder_hidden_size)
        if any(layer.attention is not None and layer.attention.mla is not None for layer in spec.layers):
            notes = ("MLA prefix sized as the per-head k and v transformers caches; PEFT sizes it from "
                     "head_dim·num_key_value_heads, which for DeepSeek configs is not that",)
        if spec.model_type == "falcon":
            notes = ("prefix sized by Falcon's KV heads; PEFT reads no num_key_value_heads from Falcon's config "
                     "and sizes it by hidden_size, which Falcon's MQA/GQA cache cannot take",)
    return PeftParams(method=job.method, trainable=trainable, frozen=base,
                      trainable_by_component={component: trainable}, notes=notes)


def trainable_params(spec: ModelSpec, job: TrainingJob, *, prefix_projection: bool = False,
                     encoder_hidden_size: int | None = None) -> PeftParams:
    """Trainable and frozen parameters of ``job.method`` on ``spec``, by where the trainable ones sit.

    ``prefix_projection`` and ``encoder_hidden_size`` are PEFT's ``PrefixTuningConfig`` fields. IA3 uses PEFT's
    default targets for the model_type; prompt methods, adapters and BitFit ignore ``target_modules``.
    """
    counts = count_params(spec)
    method, base = job.method, counts.total
    if method is Method.FULL:
        return PeftParams(method=method, trainable=base, frozen=0, trainable_by_component=dict(counts.components))
    if method in _LORA_FAMILY:
        return _lora_family(spec, job, base)
    if method is Method.IA3:
        return _ia3(spec, base)
    if method is Method.BITFIT:
        return _bitfit(spec, base)
    return _new_modules(spec, job, base, projection=prefix_projection, encoder_hidden_size=encoder_hidden_size)
