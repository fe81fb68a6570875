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
The projections and their selection by role are built in ``core/peft_linears.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from suanli.core.params import count_params, linear_params
from suanli.core.peft_linears import (
    FUSED_GATE_UP_TYPES,
    FUSED_QKV_TYPES,
    ROUTER_LINEAR_TYPES,
    Projection,
    layer_linears,
    model_linears,
    selects,
    targeted_linears,
    vision_linears,
)
from suanli.errors import SpecError
from suanli.spec.model import (
    Attention,
    GatedDeltaNet,
    KimiDeltaAttention,
    LightningAttention,
    Mamba2Mixer,
    Mixer,
    ModelSpec,
    Norm,
    NormKind,
    ShortConv,
)
from suanli.spec.precision import parse_number_format
from suanli.spec.training import Method, TrainingJob
from suanli.spec.vision import VisionTower

__all__ = [  # the linears and target selection live in core/peft_linears.py
    "FUSED_GATE_UP_TYPES", "FUSED_QKV_TYPES", "IA3_DEFAULTS", "IA3_PAPER", "PEFT_MAMBA_TYPES", "ROUTER_LINEAR_TYPES",
    "PeftParams", "Projection", "adapter_params", "bias_params", "layer_linears", "lora_params", "model_linears",
    "prefix_params", "qlora_frozen_storage", "selects", "targeted_linears", "trainable_params", "vision_bias_params",
    "vision_linears"]

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
                        "tensors or the router; drop \"experts\" from target_modules, or use lora",
                        key="error.core.peft_experts", fields={"method": method.value})
    if spec.model_type in PEFT_MAMBA_TYPES and any(p.name == "out_proj" for p in chosen):
        raise SpecError(f"HF PEFT refuses {method.value} on the Mamba mixers' out_proj of model_type "
                        f"{spec.model_type} (_check_lora_target_modules_mamba; all-linear selects it too); target "
                        "in_proj and the attention/MLP projections instead, e.g. --lora-targets "
                        "in_proj,q,k,v,o,up,down", key="error.core.peft_mamba_out_proj",
                        fields={"method": method.value, "model_type": spec.model_type})
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
        raise SpecError(f"{spec.name} has no attention layers: prefix tuning needs keys and values to prefix",
                        key="error.core.prefix_no_attention", fields={"name": spec.name})
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


def vision_bias_params(t: VisionTower) -> int:
    """BitFit on a vision tower, beyond its linears' biases: the patch convolution's and the LayerNorms'."""
    norms = [n for layer in t.layers for n in layer.norms] + list(t.norms)
    norms += [p.norm for p in t.projectors if p.norm is not None]
    return (t.hidden_size if t.patch.bias else 0) + sum(_norm_bias(n) for n in norms)


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
