"""Reference numbers from Hugging Face ``transformers``, for tests that check suanli's formulas.

This is the only module in the test suite that imports torch / transformers (imported lazily, inside the
functions, so collecting tests without them installed still works). Nothing here is used by suanli itself.

What it gives:

- ``load_catalog_config(key)``: a bundled config.json, found through ``src/suanli/catalog/models.toml``
  by key or alias.
- ``build_meta_model(config)``: the transformers model for that config on the meta device (no weights),
  ``AutoModelForCausalLM`` for decoders and ``AutoModel`` (``BertModel``, with its pooler) for ``bert``.
- ``hf_param_count`` / ``hf_param_breakdown``: parameter totals, tied weights counted once, exactly as
  ``model.parameters()`` deduplicates them.
- ``tiny_config(config)``: the same architecture shrunk (2-6 layers, small widths and vocabulary) so a real
  CPU forward/backward with random weights takes well under a second.
- ``hf_forward_flops(config, batch=, seq=, backward=)``: FLOPs counted by ``torch.utils.flop_counter``.

What ``FlopCounterMode`` counts: matrix products only -- ``mm``, ``bmm``, ``addmm``, ``baddbmm``,
``matmul``/``linear`` (through those), ``scaled_dot_product_attention`` and convolutions -- at 2 FLOPs per
multiply-add (an ``[m, k] @ [k, n]`` product counts ``2*m*k*n``). It does not count norms, softmax,
activations, rotary embeddings, residual adds, embedding lookups, routing (top-k, scatter/index_add) or
the loss. Models are built with ``attn_implementation="eager"``, so the attention score and value
products are explicit matmuls over the full ``seq x seq`` square (causal masking is applied after the
product and does not halve the count; sliding windows do not shrink it either). A backward pass counts
both the input-gradient and the weight-gradient products (about twice the forward matmul FLOPs), minus
the weight-gradient products that do not exist (e.g. none for the embedding lookup).

Quirks handled here, all of them listed so a test author knows what the numbers mean:

- ``quantization_config`` (DeepSeek-V3/R1 ship FP8 weights) is dropped before building: the count is of
  parameters, not bytes, and ``from_config`` does not quantize anyway.
- Models are built in float32 regardless of the config's ``torch_dtype``.
- MoE experts use ``experts_implementation="eager"`` (a Python loop over the experts that were hit), so each
  routed token passes through exactly ``num_experts_per_tok`` experts and the count is independent of which
  experts the router picks.
- DeepSeek-V3's ``e_score_correction_bias`` is a buffer in transformers, not a parameter (the original
  remote code made it a parameter: 256 per MoE layer, 14,848 in all for V3).
- DeepSeek-V3's multi-token-prediction module (``num_nextn_predict_layers``) is not built by transformers.
- ``FlopCounterMode``'s formula for ``convolution_backward`` ignores ``groups`` when it counts the input
  gradient, so a depthwise conv (Mamba's causal conv1d) would count C times its real work (C = channels).
  ``hf_forward_flops`` replaces it by the grouped formula: each gradient (input, weight) costs what the
  forward convolution costs, 2 · numel(grad_out) · (C_in / groups) · kernel.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

CATALOG_DIR = Path(__file__).resolve().parents[2] / "src" / "suanli" / "catalog"
INDEX_PATH = CATALOG_DIR / "models.toml"

#: model_type values built with ``AutoModel`` (encoder-only) instead of ``AutoModelForCausalLM``.
ENCODER_ONLY_TYPES = frozenset({"bert"})

#: vision-language model_types, built with ``AutoModelForImageTextToText`` (…ForConditionalGeneration).
MULTIMODAL_TYPES = frozenset({"qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "mllama", "gemma3"})

#: state-space and hybrid model_types, shrunk by ``_tiny_hybrid`` (their Mamba fields too).
HYBRID_TYPES = frozenset({"mamba2", "nemotron_h", "bamba", "jamba", "qwen3_next", "lfm2", "minimax", "kimi_linear"})

#: config keys that transformers does not need to build the module (dropped before building).
_BUILD_IGNORED_KEYS = ("quantization_config",)

BREAKDOWN_GROUPS = (
    "embedding",
    "position_embedding",
    "attention",
    "mlp",
    "experts",
    "shared_experts",
    "router",
    "norms",
    "lm_head",
    "vision",
    "other",
)


# --------------------------------------------------------------------------------------------- catalog


@cache
def _index() -> dict[str, dict[str, Any]]:
    """Map every key and alias (lowercase) to its ``[[model]]`` block of models.toml."""
    with INDEX_PATH.open("rb") as fh:
        blocks = tomllib.load(fh)["model"]
    names: dict[str, dict[str, Any]] = {}
    for block in blocks:
        for name in (block["key"], *block.get("aliases", ())):
            names[name.lower()] = block
    return names


def catalog_keys() -> list[str]:
    """Canonical keys of every bundled model, in index order."""
    seen: dict[str, None] = {}
    for block in _index().values():
        seen.setdefault(block["key"], None)
    return list(seen)


def catalog_entry(key: str) -> dict[str, Any]:
    """The models.toml block for a key or alias (case-insensitive); KeyError names close matches."""
    try:
        return copy.deepcopy(_index()[key.lower()])
    except KeyError:
        close = sorted(k for k in _index() if key.lower()[:5] in k)[:8]
        raise KeyError(f"{key!r} is not in {INDEX_PATH.name}; close names: {close}") from None


def load_catalog_config(key: str) -> dict[str, Any]:
    """The bundled config.json (as a fresh dict) of a catalog model, by key or alias."""
    entry = catalog_entry(key)
    path = CATALOG_DIR / "models" / entry["config"]
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- building


def is_moe(config: dict[str, Any]) -> bool:
    """True when the config routes tokens to experts (Mixtral, Qwen-MoE, DeepSeek)."""
    keys = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")  # moe_num_experts: ERNIE
    text = config.get("text_config") or {}  # vision-language MoE (Qwen3-VL-MoE) nests its text model
    return any((config.get(k) or 0) > 0 or (text.get(k) or 0) > 0 for k in keys)


def _hf_config(config: dict[str, Any]) -> Any:
    """A transformers ``PretrainedConfig`` for a config.json dict (eager attention and experts)."""
    import transformers

    data = {k: v for k, v in copy.deepcopy(config).items() if k not in _BUILD_IGNORED_KEYS}
    model_type = data.pop("model_type")
    hf = transformers.AutoConfig.for_model(model_type, **data)
    hf._attn_implementation = "eager"
    hf._experts_implementation = "eager"
    return hf


def _build(config: dict[str, Any], device: str) -> torch.nn.Module:
    """Build the transformers module for ``config`` on ``device`` in float32 (random init off meta)."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    hf = _hf_config(config)
    encoder_only = config["model_type"] in ENCODER_ONLY_TYPES
    auto = transformers.AutoModel if encoder_only else transformers.AutoModelForCausalLM
    if config["model_type"] in MULTIMODAL_TYPES:
        auto = transformers.AutoModelForImageTextToText
    with torch.device(device):
        model = auto.from_config(
            hf, dtype=torch.float32, attn_implementation="eager", experts_implementation="eager"
        )
    return model.eval()


def build_meta_model(config: dict[str, Any]) -> torch.nn.Module:
    """The transformers model for a config.json dict on the meta device: shapes only, no memory, no init.

    Decoders are built with ``AutoModelForCausalLM`` (so ``lm_head`` is included, tied or not); ``bert`` with
    ``AutoModel`` (``BertModel``: embeddings, encoder and pooler; no MLM head).
    """
    return _build(config, "meta")


# ------------------------------------------------------------------------------------------ parameters


def hf_param_count(config: dict[str, Any]) -> int:
    """Total parameters of the transformers model: ``sum(p.numel() for p in model.parameters())``.

    Tied weights (e.g. ``lm_head`` sharing the token embedding) are counted once, as ``parameters()``
    deduplicates shared tensors. Buffers (rotary ``inv_freq``, DeepSeek-V3's ``e_score_correction_bias``)
    are not parameters and are not counted.
    """
    model = build_meta_model(config)
    return sum(p.numel() for p in model.parameters())


# Ordered rules: the first group whose pattern matches a parameter name wins.
_NORM_SEGMENT = re.compile(r"(norm|^ln(_|\d|$))", re.IGNORECASE)
_VISION = re.compile(r"(^|\.)(visual|vision_tower|vision_model|multi_modal_projector)\.")
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("position_embedding", re.compile(r"(^|\.)(wpe|embed_positions|position_embeddings)\.")),
    ("embedding", re.compile(r"(^|\.)(embed_tokens|wte|word_embeddings|embed_in)\.")),
    ("lm_head", re.compile(r"(^|\.)(lm_head|embed_out)\.")),
    ("router", re.compile(r"(shared_expert_gate|(mlp|block_sparse_moe)\.gate\.|\.router\.)")),
    # shared_mlp: Hunyuan; mlps.0: LongCat-Flash's first dense MLP, which runs beside its MoE on the same input
    ("shared_experts", re.compile(r"\.(shared_experts?|shared_mlp|mlps\.0)\.")),
    ("experts", re.compile(r"\.experts\.")),
    ("attention", re.compile(r"(self_attn|self_attention|cross_attn|\.attn\.|\.attention\.)")),
    ("mlp", re.compile(r"(\.mlp\.|\.mlps\.1\.|\.fc[12]\.|\.intermediate\.|\.output\.dense\.|feed_forward)")),
)


def classify_param(name: str) -> str:
    """The breakdown group of one parameter name (see ``hf_param_breakdown``)."""
    if _VISION.search(name):
        return "vision"
    if any(_NORM_SEGMENT.search(seg) for seg in name.split(".")[:-1]):
        return "norms"
    for group, pattern in _RULES:
        if pattern.search("." + name):
            return group
    return "other"


def hf_param_breakdown(config: dict[str, Any]) -> dict[str, int]:
    """Parameters of the transformers model grouped by component, from the parameter names.

    Groups (every group is present, zero when absent; the values sum to ``hf_param_count``):

    - ``embedding``: token embedding (``embed_tokens``, ``wte``, ``word_embeddings``, ``embed_in``).
    - ``position_embedding``: learned absolute positions (``wpe``, OPT/BERT ``*position*``).
    - ``attention``: Q/K/V/O projections and their biases, MLA down/up projections.
    - ``mlp``: dense feed-forward layers (including DeepSeek's first dense layers, BERT intermediate/output).
    - ``experts``: routed experts. ``shared_experts``: always-on experts (Qwen2-MoE, DeepSeek).
    - ``router``: the gate that scores experts (and Qwen2-MoE's 1-output ``shared_expert_gate``).
    - ``norms``: every LayerNorm/RMSNorm weight and bias, including per-head q/k norms (Qwen3, OLMo 2,
      Gemma 3) and MLA's ``q_a_layernorm``/``kv_a_layernorm``.
    - ``lm_head``: the output projection when it is not tied (a tied head is already in ``embedding``).
    - ``vision``: a vision-language model's image encoder and projector (``visual``, ``vision_tower``,
      ``vision_model``, ``multi_modal_projector``); mllama's cross-attention layers (and their tanh gates)
      are ``attention``.
    - ``other``: anything else, e.g. BERT's pooler and token-type embeddings.
    """
    model = build_meta_model(config)
    groups = dict.fromkeys(BREAKDOWN_GROUPS, 0)
    classes = {prefix: type(module).__name__ for prefix, module in model.named_modules()}
    for name, param in model.named_parameters():
        group = classify_param(name)
        groups[_by_module(name, classes) if group == "other" else group] += param.numel()
    return groups


def _by_module(name: str, classes: dict[str, str]) -> str:
    """Hybrid blocks name every token mixer ``mixer`` (Nemotron-H: Mamba, attention, MLP alike) and Mamba-2
    its token table ``embeddings``: for a name no rule places, the enclosing modules' classes decide."""
    parts = name.split(".")
    owners = [classes.get(".".join(parts[:i]), "") for i in range(len(parts) - 1, 0, -1)]
    if any("Attention" in owner for owner in owners):
        return "attention"
    if any(owner.endswith("MLP") for owner in owners):
        return "mlp"
    if owners and owners[0] == "Embedding" and parts[-2] == "embeddings":
        return "embedding"
    return "other"


# ----------------------------------------------------------------------------------------- tiny config

_TINY_HEAD_DIM = 16
_TINY_VOCAB = 512


def _first_key(config: dict[str, Any], *names: str) -> str | None:
    return next((n for n in names if n in config), None)


def _scaled(value: int, ratio: float, multiple: int = 8, minimum: int = 16) -> int:
    """``value * ratio`` rounded to a multiple, at least ``minimum``."""
    return max(minimum, multiple * round(value * ratio / multiple))


def _tiny_layers(config: dict[str, Any], layers: int) -> int:
    """Enough layers to keep the layer-type pattern: dense-first MoE, local/global alternation."""
    if config.get("model_type") == "gemma3_text":
        return min(layers, int(config.get("sliding_window_pattern") or 6))
    if config.get("model_type") == "llama4_text":  # three chunked RoPE layers, then a global NoPE one
        return min(layers, int(config.get("no_rope_layer_interval") or 4))
    if config.get("model_type") in ("cohere2", "exaone4", "olmo3", "smollm3"):  # local/RoPE layers, then a global
        pattern = config.get("sliding_window_pattern") or config.get("no_rope_layer_interval") or 4
        return min(layers, len(pattern) if isinstance(pattern, str) else int(pattern))
    first_dense = config.get("first_k_dense_replace")
    if first_dense:
        return min(layers, 1 + 2)
    return min(layers, 2 if config.get("model_type") != "gemma2" else 4)


def tiny_config(config: dict[str, Any]) -> dict[str, Any]:
    """The same architecture, shrunk so a CPU forward/backward with random weights is cheap.

    Kept: ``model_type`` and every architecture switch (bias flags, norms, activation, parallel blocks,
    rotary fraction, tied embeddings, sliding-window alternation, softcapping); the GQA ratio
    ``num_attention_heads / num_key_value_heads`` (KV heads cut to at most 2, or MQA's 1); whether
    ``head_dim`` is explicit and differs from ``hidden_size / num_attention_heads`` (the ratio is kept); the
    intermediate/hidden ratios (dense, MoE and shared-expert); the number of experts, top-k, shared experts
    and expert groups; a dense first layer where the model has ``first_k_dense_replace``; MLA with or
    without query compression. Shrunk: layers (2-6, enough for one full layer-type pattern), head_dim 16,
    vocabulary 512, MLA ranks and head dims (divided by 16), windows (at most 64).
    """
    d = copy.deepcopy(config)
    d.pop("quantization_config", None)
    mt = d["model_type"]
    if mt in MULTIMODAL_TYPES:
        return _tiny_multimodal(d)
    if mt in HYBRID_TYPES and not d.get("_tiny_attention_part"):
        return _tiny_hybrid(d)

    hidden_k = _first_key(d, "n_embd", "hidden_size", "d_model")
    heads_k = _first_key(d, "n_head", "num_attention_heads")
    layers_k = _first_key(d, "n_layer", "num_hidden_layers", "num_layers")  # num_layers: LongCat-Flash
    kv_k = _first_key(d, "num_key_value_heads", "num_kv_heads")
    if not (hidden_k and heads_k and layers_k):
        raise ValueError(f"tiny_config does not know the width/head/layer keys of model_type {mt!r}")
    hidden, heads, layers = d[hidden_k], d[heads_k], d[layers_k]
    kv = d[kv_k] if kv_k and d[kv_k] else heads
    if mt == "falcon" and d.get("multi_query") and not d.get("new_decoder_architecture"):
        kv = 1
    head_dim = d.get("head_dim") or hidden // heads

    # Attention heads: keep the query/KV group ratio, at most 2 KV heads.
    group = heads // kv
    t_kv = min(kv, 2)
    t_heads = t_kv * group
    if t_heads > 32 and kv == 1:  # MQA with many heads (Falcon-7B: 71): fewer, still MQA
        t_heads = 8
    t_hidden = t_heads * _TINY_HEAD_DIM
    if d.get("head_dim"):  # explicit head_dim: keep hidden / (heads * head_dim), e.g. 0.5 for Qwen3-0.6B
        t_hidden = _scaled(t_hidden, hidden / (heads * head_dim))
        d["head_dim"] = _TINY_HEAD_DIM
    ratio = t_hidden / hidden

    d[hidden_k] = t_hidden
    d[heads_k] = t_heads
    if kv_k:
        d[kv_k] = t_kv
    d[layers_k] = _tiny_layers(d, layers)

    for k in (
        "intermediate_size",
        "ffn_dim",
        "moe_intermediate_size",
        "shared_expert_intermediate_size",
        "expert_ffn_hidden_size",
        "ffn_hidden_size",
        "n_inner",
        "intermediate_size_mlp",
    ):
        if isinstance(d.get(k), list):  # one width per layer (Hunyuan)
            d[k] = [_scaled(v, ratio) for v in d[k]]
        elif d.get(k):
            d[k] = _scaled(d[k], ratio)
    if d.get("rotary_dim"):  # MiniMax-M2: a fixed number of rotary channels, kept as a fraction of head_dim
        d["rotary_dim"] = max(2, d["rotary_dim"] * _TINY_HEAD_DIM // head_dim)
    if mt == "opt":
        d["word_embed_proj_dim"] = t_hidden
    if "query_pre_attn_scalar" in d:  # Gemma: head_dim, or hidden / heads (Gemma 2/3 27B)
        same_as_head_dim = d["query_pre_attn_scalar"] == head_dim
        d["query_pre_attn_scalar"] = _TINY_HEAD_DIM if same_as_head_dim else t_hidden // t_heads

    # Multi-head latent attention (DeepSeek-V2/V3): ranks and head dims / 16, q_lora_rank None kept None.
    for k in ("kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
        if d.get(k):
            d[k] = max(4, d[k] // 16)
    if mt == "longcat_flash":  # its rotary embedding reads head_dim, the RoPE part of the MLA head
        d["head_dim"] = d["qk_rope_head_dim"]
    if d.get("first_k_dense_replace"):
        d["first_k_dense_replace"] = 1
    if "max_window_layers" in d:
        d["max_window_layers"] = min(d["max_window_layers"], d[layers_k])
    if d.get("mlp_only_layers"):
        d["mlp_only_layers"] = [i for i in d["mlp_only_layers"] if i < d[layers_k]]
    # per-layer lists (gpt-oss, Llama 4, Hunyuan): the kept layers' entries
    for k in ("layer_types", "no_rope_layers", "moe_topk", "moe_intermediate_size", "num_shared_expert"):
        if isinstance(d.get(k), list):
            d[k] = d[k][: d[layers_k]]
    if isinstance(d.get("moe_layers"), list):
        d["moe_layers"] = [i for i in d["moe_layers"] if i < d[layers_k]]
    for k in ("sliding_window", "sliding_window_size"):
        if d.get(k):
            d[k] = min(d[k], 64)

    d["vocab_size"] = min(d["vocab_size"], _TINY_VOCAB)
    for k in ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"):
        v = d.get(k)
        if isinstance(v, int) and v >= d["vocab_size"]:
            d[k] = 0
        elif isinstance(v, list):
            d[k] = [t if t < d["vocab_size"] else 0 for t in v]
    return d


def _tiny_hybrid(d: dict[str, Any]) -> dict[str, Any]:
    """A hybrid config shrunk: attention and MLP parts as ``tiny_config`` shrinks them; Mamba layers of 8 heads
    of 8 (Bamba: expand · h / 8), state 16, at most 2 groups, chunks of 16 tokens (so 24-token sequences span
    two chunks, one padded); enough layers for every block type (Nemotron-H: the pattern up to its first
    attention block and one more; Jamba: through the first attention layer; Bamba: one attention layer)."""
    mt = d["model_type"]
    if mt == "mamba2":
        d.update(hidden_size=32, num_hidden_layers=2, vocab_size=min(d["vocab_size"], _TINY_VOCAB), expand=2,
                 num_heads=8, head_dim=8, state_size=16, n_groups=min(d.get("n_groups", 1), 2), chunk_size=16,
                 intermediate_size=64)
        return d
    t = tiny_config({**d, "_tiny_attention_part": True})
    t.pop("_tiny_attention_part")
    groups = {"nemotron_h": "n_groups", "bamba": "mamba_n_groups"}
    if mt in groups:
        t[groups[mt]] = min(t.get(groups[mt], 1), 2)
    if mt == "nemotron_h":
        pattern = t["hybrid_override_pattern"]
        t["hybrid_override_pattern"] = pattern[: pattern.index("*") + 2]
        t["num_hidden_layers"] = len(t["hybrid_override_pattern"])
        t.pop("attention_head_dim", None)
        t["head_dim"] = t["hidden_size"] // t["num_attention_heads"]
        t.update(mamba_num_heads=8, mamba_head_dim=8, ssm_state_size=16, chunk_size=16)
    elif mt == "bamba":
        t.update(mamba_n_heads=8, mamba_d_head=t["mamba_expand"] * t["hidden_size"] // 8, mamba_d_state=16,
                 mamba_chunk_size=16, num_hidden_layers=3, attn_layer_indices=[1])
    elif mt == "jamba":
        t.update(mamba_dt_rank=8, num_hidden_layers=t["attn_layer_offset"] + 1)
    elif mt == "qwen3_next":  # one full-attention layer in four; Gated DeltaNet heads keep their k/v ratio
        ratio = t["linear_num_value_heads"] // t["linear_num_key_heads"]
        t.update(num_hidden_layers=4, linear_num_key_heads=2, linear_num_value_heads=2 * ratio,
                 linear_key_head_dim=16, linear_value_head_dim=16)
        t["layer_types"] = ["linear_attention"] * 3 + ["full_attention"]
    elif mt == "minimax":  # one lightning and one softmax layer; blocks of 16 (24 tokens: one whole, one part)
        t.update(num_hidden_layers=2, layer_types=["linear_attention", "full_attention"], block_size=16,
                 rotary_dim=t.get("head_dim", 16) // 2)
    elif mt == "kimi_linear":  # KDA, KDA, KDA, MLA (1-based lists, as published); 2 KDA heads of 16
        t.update(num_hidden_layers=4, linear_attn_config={
            **t.get("linear_attn_config", {}), "num_heads": 2, "head_dim": 16, "kda_layers": [1, 2, 3],
            "full_attn_layers": [4]})
    elif mt == "lfm2":  # conv, conv, attention, conv; the MLP width rule kept with a finer multiple
        t.update(num_hidden_layers=4, full_attn_idxs=[2], block_multiple_of=16, block_dim=t["hidden_size"],
                 block_ff_dim=t["intermediate_size"])
    return t


#: vision_config fields of the tiny towers: narrow and shallow, every layer-index list kept non-empty.
_TINY_VISION: dict[str, dict[str, Any]] = {
    "qwen2_5_vl": {"depth": 4, "hidden_size": 64, "num_heads": 4, "intermediate_size": 96,
                   "fullatt_block_indexes": [1, 3]},
    "qwen3_vl": {"depth": 4, "hidden_size": 64, "num_heads": 4, "intermediate_size": 96,
                 "deepstack_visual_indexes": [0, 2]},
    "mllama": {"hidden_size": 64, "attention_heads": 4, "intermediate_size": 96, "num_hidden_layers": 4,
               "num_global_layers": 2, "intermediate_layers_indices": [0, 2], "vision_output_dim": 192,
               "image_size": 56},
    "gemma3": {"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 96, "num_hidden_layers": 2,
               "image_size": 224},
}
_TINY_VISION["qwen3_vl_moe"] = _TINY_VISION["qwen3_vl"]


def _tiny_multimodal(d: dict[str, Any]) -> dict[str, Any]:
    """A vision-language config shrunk: the text part as ``tiny_config`` shrinks a text model (multimodal
    RoPE sections cut to the tiny head_dim; mllama keeps one cross-attention layer), the tower as
    ``_TINY_VISION`` says (Gemma 3: 16 tokens per 224-px image)."""
    mt = d["model_type"]
    vision = {**d.pop("vision_config"), **_TINY_VISION[mt]}
    if "text_config" in d:
        text = {"vocab_size": _TINY_VOCAB, **d.pop("text_config")}
        text.setdefault("model_type", f"{mt}_text")
        if mt == "mllama":
            text["num_hidden_layers"], text["cross_attention_layers"] = 3, [1]
        tiny_text = tiny_config(text)
        if mt == "mllama":
            tiny_text["num_hidden_layers"] = 3
        d["text_config"] = tiny_text
        text_hidden = tiny_text["hidden_size"]
    else:  # Qwen2.5-VL publishes its text keys at the top level
        d = tiny_config({**d, "model_type": "qwen2"}) | {"model_type": mt}
        text_hidden = d["hidden_size"]
    for holder in (d, d.get("text_config") or {}):
        for key in ("rope_scaling", "rope_parameters"):
            if isinstance(holder.get(key), dict) and "mrope_section" in holder[key]:
                holder[key]["mrope_section"] = [4, 2, 2]  # sums to the tiny head_dim / 2
    if "out_hidden_size" in vision or mt.startswith("qwen"):
        vision["out_hidden_size"] = text_hidden
    if mt == "gemma3":
        d["mm_tokens_per_image"] = 16
    d["vision_config"] = vision
    return d


def hf_vision_flops(config: dict[str, Any], *, height: int, width: int, tiles: int = 1, seed: int = 0) -> int:
    """Matmul and convolution FLOPs ``FlopCounterMode`` counts for one image through the vision tower and its
    projector(s) (Qwen: ``get_image_features`` on a 1 × (H/p) × (W/p) grid; Gemma 3: ``get_image_features``;
    mllama: ``vision_model`` over ``tiles`` tiles, then ``multi_modal_projector``), on the CPU."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(seed)
    model = _build(config, "cpu").model
    vision, mt = config["vision_config"], config["model_type"]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        if mt.startswith("qwen"):
            p, t = vision["patch_size"], vision.get("temporal_patch_size", 2)
            grid = torch.tensor([[1, height // p, width // p]])
            pixels = torch.randn((height // p) * (width // p), 3 * t * p * p)
            model.get_image_features(pixels, grid)
        elif mt == "gemma3":
            model.get_image_features(torch.randn(1, 3, height, width))
        else:  # mllama
            pixels = torch.randn(1, 1, tiles, 3, height, width)
            states = model.vision_model(pixels, torch.ones(1, 1, dtype=torch.long),
                                        torch.ones(1, 1, tiles, dtype=torch.long)).last_hidden_state
            model.multi_modal_projector(states)
    return int(counter.get_total_flops())


# ---------------------------------------------------------------------------------------------- FLOPs


def static_rope(config: dict[str, Any]) -> dict[str, Any]:
    """The config without dynamic-NTK RoPE scaling (InternLM3): that rotary embedding compares the input's
    largest position with its cached length, a data-dependent check the meta device cannot answer. RoPE holds
    no matmul, so the FLOP count is the same."""
    scaling = config.get("rope_scaling") or {}
    if scaling.get("rope_type", scaling.get("type")) != "dynamic":
        return config
    return {**config, "rope_scaling": None}


def hf_forward_flops(
    config: dict[str, Any],
    *,
    batch: int,
    seq: int,
    backward: bool = False,
    device: str = "meta",
    seed: int = 0,
) -> int:
    """Matmul FLOPs that ``FlopCounterMode`` counts for one forward (and, if asked, backward) pass.

    One batch of ``batch`` sequences of ``seq`` tokens, eager attention over the full ``seq x seq`` square.
    The backward pass is driven by ``logits.sum()`` (``last_hidden_state.sum() + pooler_output.sum()`` for
    BERT, so every weight gets a gradient); the sum itself costs no matmul. What is and is not counted is
    described in the module docstring.

    ``device="meta"`` needs no memory and works for dense models of any size. Mixture-of-experts routing
    is data dependent (``one_hot``/``nonzero``/``where``), which the meta device cannot run: pass a
    ``tiny_config(...)`` and ``device="cpu"`` (random weights, seeded by ``seed``) for those.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if device == "meta" and is_moe(config):
        raise ValueError(
            f"{config['model_type']} routes tokens to experts, which cannot run on the meta device; "
            "use hf_forward_flops(tiny_config(config), ..., device='cpu')"
        )
    if device != "meta":
        torch.manual_seed(seed)
    model = _build(static_rope(config) if device == "meta" else config, device)
    vocab = model.config.get_text_config().vocab_size
    if device == "meta":
        input_ids = torch.zeros((batch, seq), dtype=torch.long, device="meta")
    else:
        input_ids = torch.randint(0, vocab, (batch, seq), device=device)
    # Decoders get an explicit all-ones mask: without one, transformers inspects position_ids for packed
    # sequences, a data-dependent check the meta device cannot answer. The encoder gets none: with one, it
    # checks whether the mask is all ones (equally data dependent); without one it attends everywhere.
    inputs: dict[str, Any] = {"input_ids": input_ids}
    if config["model_type"] not in ENCODER_ONLY_TYPES:
        inputs["attention_mask"] = torch.ones((batch, seq), dtype=torch.long, device=device)
        inputs["use_cache"] = False

    counter = FlopCounterMode(display=False, custom_mapping=_grouped_conv_backward())
    if not backward:
        with torch.no_grad(), counter:
            model(**inputs)
        return int(counter.get_total_flops())
    with counter:
        out = model(**inputs)
        # BertModel has no logits: sum both outputs, so the pooler's weights get their gradient too
        has_logits = hasattr(out, "logits")
        loss = out.logits.sum() if has_logits else out.last_hidden_state.sum() + out.pooler_output.sum()
        loss.backward()
    return int(counter.get_total_flops())


def _grouped_conv_backward() -> dict[Any, Any]:
    """aten.convolution_backward counted with groups (see the module docstring)."""
    import math

    import torch

    def flops(grad_out_shape: Any, x_shape: Any, w_shape: Any, *args: Any, out_shape: Any = None,
              **kwargs: Any) -> int:
        output_mask = args[-1]
        forward = 2 * math.prod(grad_out_shape) * math.prod(w_shape[1:])
        return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))

    return {torch.ops.aten.convolution_backward: flops}


__all__ = [
    "BREAKDOWN_GROUPS",
    "ENCODER_ONLY_TYPES",
    "MULTIMODAL_TYPES",
    "build_meta_model",
    "catalog_entry",
    "catalog_keys",
    "classify_param",
    "hf_forward_flops",
    "hf_param_breakdown",
    "hf_param_count",
    "hf_vision_flops",
    "is_moe",
    "load_catalog_config",
    "tiny_config",
]
