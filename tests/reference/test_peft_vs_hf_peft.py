"""Our trainable-parameter counts equal Hugging Face PEFT's, parameter for parameter.

Each case wraps a transformers model built on the meta device (shapes only) with ``peft.get_peft_model`` and compares
``get_nb_trainable_parameters()`` (trainable, all) with ``trainable_params`` (trainable, total). Full-size models
where PEFT is quick on them; tiny copies (``tiny_config``) for Mixtral and for the sweep over the whole catalog.
Where PEFT and we differ on purpose, the difference is asserted to be exactly the documented one.
"""

from __future__ import annotations

import re
import warnings
from functools import cache
from typing import Any

import pytest
from tests.reference.hf_reference import build_meta_model, load_catalog_config, tiny_config

from suanli.core.params import count_params
from suanli.core.peft import PeftParams, Projection, lora_params, model_linears, trainable_params
from suanli.errors import SpecError
from suanli.spec.model import ModelSpec, Moe
from suanli.spec.resolve import catalog_config, model_catalog, spec_from_config
from suanli.spec.training import Method, PeftConfig, TrainingJob

pytest.importorskip("torch")
pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

ALL_ROLES = ("q", "k", "v", "o", "gate", "up", "down")
_LLAMA_NAMES = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj", "up": "up_proj",
                "down": "down_proj"}
#: transformers module names of each role, by model_type (regex fragments matched at the end of a module name)
HF_NAMES: dict[str, dict[str, str]] = {
    "gpt2": {"q": "c_attn", "k": "c_attn", "v": "c_attn", "o": r"attn\.c_proj", "up": "c_fc", "down": r"mlp\.c_proj"},
    "bert": {"q": "query", "k": "key", "v": "value", "o": r"attention\.output\.dense", "up": r"intermediate\.dense",
             "down": r"layer\.\d+\.output\.dense"},
}


def hf_targets(model_type: str, roles: tuple[str, ...]) -> str:
    """A PEFT ``target_modules`` regex selecting the modules our roles name."""
    names = HF_NAMES.get(model_type, _LLAMA_NAMES)
    return r".*\.(" + "|".join(sorted({names[r] for r in roles if r in names})) + ")$"


def theirs(config: dict[str, Any], peft_config: Any) -> tuple[int, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = peft.get_peft_model(build_meta_model(config), peft_config)
    trainable, total = model.get_nb_trainable_parameters()
    return int(trainable), int(total)


def ours(config: dict[str, Any], method: Method, *, prefix_projection: bool = False, **knobs: Any) -> PeftParams:
    job = TrainingJob(seq=128, method=method, peft=PeftConfig(**knobs))
    return trainable_params(spec_from_config(config, name=config["model_type"]), job,
                            prefix_projection=prefix_projection)


def _task(model_type: str) -> str:
    return "FEATURE_EXTRACTION" if model_type == "bert" else "CAUSAL_LM"


def cases(model_type: str) -> dict[str, tuple[Any, Method, dict[str, Any]]]:
    """name -> (PEFT config, our method, our PeftConfig knobs and options)."""
    lora = peft.LoraConfig
    task = _task(model_type)
    return {
        "lora-qv-r8": (lora(r=8, target_modules=hf_targets(model_type, ("q", "v"))), Method.LORA,
                       {"rank": 8, "target_modules": ("q", "v")}),
        "lora-7-r16": (lora(r=16, target_modules=hf_targets(model_type, ALL_ROLES)), Method.LORA, {"rank": 16}),
        "lora-all-linear-r64": (lora(r=64, target_modules="all-linear"), Method.LORA,
                                {"rank": 64, "target_modules": ("all-linear",)}),
        "dora-7-r16": (lora(r=16, use_dora=True, target_modules=hf_targets(model_type, ALL_ROLES)), Method.DORA,
                       {"rank": 16}),
        "adalora-qv-down-r12": (
            peft.AdaLoraConfig(init_r=12, target_r=4, total_step=100,
                               target_modules=hf_targets(model_type, ("q", "v", "down"))),
            Method.ADALORA, {"rank": 12, "target_modules": ("q", "v", "down")}),
        "ia3-default": (peft.IA3Config(task_type=task), Method.IA3, {}),
        "prompt-20": (peft.PromptTuningConfig(task_type=task, num_virtual_tokens=20), Method.PROMPT_TUNING,
                      {"num_virtual_tokens": 20}),
        "prefix-20": (peft.PrefixTuningConfig(task_type=task, num_virtual_tokens=20), Method.PREFIX_TUNING,
                      {"num_virtual_tokens": 20}),
        "prefix-mlp-20": (peft.PrefixTuningConfig(task_type=task, num_virtual_tokens=20, prefix_projection=True),
                          Method.PREFIX_TUNING, {"num_virtual_tokens": 20, "prefix_projection": True}),
    }


CASE_NAMES = list(cases("llama"))
FULL_SIZE = ("llama-3.1-8b", "qwen2.5-0.5b", "gpt2", "bert-base-uncased")


@cache
def _config(key: str, tiny: bool) -> dict[str, Any]:
    config = load_catalog_config(key)
    return tiny_config(config) if tiny else config


@pytest.mark.parametrize("case", CASE_NAMES)
@pytest.mark.parametrize("key", FULL_SIZE)
def test_full_size_models_match_peft(key: str, case: str) -> None:
    config = _config(key, tiny=False)
    peft_config, method, knobs = cases(config["model_type"])[case]
    counted = ours(config, method, **knobs)
    assert (counted.trainable, counted.total) == theirs(config, peft_config)


@pytest.mark.parametrize("case", [c for c in CASE_NAMES if c != "ia3-default"])
def test_tiny_mixtral_matches_peft(case: str) -> None:
    config = _config("mixtral-8x7b", tiny=True)
    peft_config, method, knobs = cases("mixtral")[case]
    if knobs.get("target_modules") == ("all-linear",):  # PEFT converts Mixtral's experts and router too
        knobs = {**knobs, "target_modules": ("all-linear", "experts")}
    counted = ours(config, method, **knobs)
    assert (counted.trainable, counted.total) == theirs(config, peft_config)


def test_full_size_mixtral_attention_lora_matches_peft() -> None:
    config = _config("mixtral-8x7b", tiny=False)
    peft_config = peft.LoraConfig(r=16, target_modules=hf_targets("mixtral", ("q", "k", "v", "o")))
    counted = ours(config, Method.LORA, rank=16, target_modules=("q", "k", "v", "o"))
    assert (counted.trainable, counted.total) == theirs(config, peft_config)
    assert counted.trainable == 32 * 16 * (2 * (4096 + 4096) + 2 * (4096 + 1024))


# PEFT 0.21 maps transformers-4 expert names onto transformers 5's fused expert tensors for these model_types
# (``convert_peft_config_for_transformers``), so its all-linear reaches the experts and the router there.
PEFT_CONVERTS_EXPERTS = frozenset({"mixtral", "qwen3_moe", "deepseek_v2", "deepseek_v3", "deepseek_v32", "glm4_moe",
                                   "ernie4_5_moe", "hunyuan_v1_moe", "minimax_m2", "longcat_flash", "qwen3_next",
                                   "minimax"})


def _identity_expert_rows(spec: ModelSpec, rank: int) -> tuple[int, int]:
    """LongCat-Flash: transformers sizes gate_up_proj for the zero-computation experts too (rows the checkpoint
    does not have, see test_params_vs_transformers), and PEFT adapts them like the real ones: their LoRA and
    base parameters."""
    lora = base = 0
    for layer, count in spec.layer_groups():
        if isinstance(layer.ffn, Moe) and layer.ffn.zero_experts:
            i, rows = layer.ffn.expert.intermediate_size, count * layer.ffn.zero_experts
            gate_up = Projection(name="gate_up", roles=frozenset(), in_features=spec.hidden_size, out_features=2 * i,
                                 bias=False, count=rows, component="experts", expert=True, branches=2)
            lora += lora_params(gate_up, rank)
            base += rows * 2 * i * spec.hidden_size
    return lora, base


def _dense_and_shared_lora(spec: ModelSpec, rank: int) -> int:
    return sum(lora_params(p, rank) for p in model_linears(spec) if p.component in ("mlp", "shared_experts"))


@pytest.mark.parametrize("key", [entry.key for entry in model_catalog()])
def test_all_linear_lora_over_the_catalog(key: str) -> None:
    """Every catalog architecture, tiny: PEFT's all-linear LoRA (experts too where PEFT converts them)."""
    config = tiny_config(catalog_config(next(e for e in model_catalog() if e.key == key)))
    model_type = config["model_type"]
    targets = ("all-linear", "experts") if model_type in PEFT_CONVERTS_EXPERTS else ("all-linear",)
    try:
        trainable, total = theirs(config, peft.LoraConfig(r=4, target_modules="all-linear"))
    except ValueError as refused:  # PEFT's _check_lora_target_modules_mamba: no LoRA on a Mamba out_proj
        assert "incompatible with Mamba" in str(refused)
        with pytest.raises(SpecError, match="_check_lora_target_modules_mamba"):
            ours(config, Method.LORA, rank=4, target_modules=targets)
        return
    counted = ours(config, Method.LORA, rank=4, target_modules=targets)
    if model_type in PEFT_CONVERTS_EXPERTS:
        # PEFT's conversion turns gate_proj/up_proj/down_proj into the experts' tensors, which also drops the
        # adapters of the dense layers' MLPs and of the shared experts that all-linear reached before.
        spec = spec_from_config(config, name=key)
        missing = _dense_and_shared_lora(spec, 4)
        assert missing > 0 or not model_type.startswith("deepseek")
        phantom_lora, phantom_base = _identity_expert_rows(spec, 4)
        trainable, total = trainable - phantom_lora, total - phantom_lora - phantom_base
        assert (counted.trainable - missing, counted.total - missing) == (trainable, total)
    else:
        assert (counted.trainable, counted.total) == (trainable, total)


def test_qwen3_moe_expert_lora_matches_peft_conversion() -> None:
    config = _config("qwen3-30b-a3b", tiny=True)
    counted = ours(config, Method.LORA, rank=8, target_modules=(*ALL_ROLES, "experts"))
    assert (counted.trainable, counted.total) == theirs(
        config, peft.LoraConfig(r=8, target_modules=hf_targets("qwen3_moe", ALL_ROLES)))


def test_ia3_on_mixtral_differs_by_the_experts_down_inputs() -> None:
    """PEFT's Mixtral IA3 default names w2, which transformers 5 no longer has: only k and v get vectors there.
    We scale every expert's down input as well (the paper's feed-forward vector, PEFT on transformers 4)."""
    config = _config("mixtral-8x7b", tiny=True)
    counted = ours(config, Method.IA3)
    spec = spec_from_config(config, name="mixtral")
    experts_ff = sum(layer.ffn.num_experts * layer.ffn.expert.intermediate_size
                     for layer in spec.layers if isinstance(layer.ffn, Moe))
    trainable, total = theirs(config, peft.IA3Config(task_type="CAUSAL_LM"))
    assert (counted.trainable - experts_ff, counted.total - experts_ff) == (trainable, total)


@pytest.mark.parametrize("key", ["phi-3-mini", "qwen3-30b-a3b", "starcoder2-3b"])
def test_ia3_without_a_peft_default_matches_explicit_k_v_down(key: str) -> None:
    config = _config(key, tiny=True)
    model_type = config["model_type"]
    names = {"phi3": ("qkv_proj", "down_proj"), "starcoder2": ("k_proj", "v_proj", "c_proj")}.get(
        model_type, ("k_proj", "v_proj", "down_proj"))
    ia3 = peft.IA3Config(target_modules=list(names), feedforward_modules=[names[-1]])
    counted = ours(config, Method.IA3)
    spec = spec_from_config(config, name=key)
    experts_ff = sum(p.count * p.in_features for p in model_linears(spec) if p.expert and p.name == "down")
    assert (counted.trainable - experts_ff, counted.total - experts_ff) == theirs(config, ia3)


def test_dora_and_adalora_on_experts_are_refused_like_peft() -> None:
    config = _config("qwen3-30b-a3b", tiny=True)
    with pytest.raises(ValueError, match="does not work"):
        theirs(config, peft.LoraConfig(r=4, use_dora=True, target_modules=hf_targets("qwen3_moe", ALL_ROLES)))
    with pytest.raises(ValueError, match=r"nn\.Linear layers only"):
        ours(config, Method.DORA, rank=4, target_modules=(*ALL_ROLES, "experts"))


def test_falcon_prefix_is_sized_by_kv_heads_where_peft_uses_hidden_size() -> None:
    """Falcon's config names its KV heads num_kv_heads, so PEFT sizes the prefix by hidden_size, which does not
    fit Falcon's MQA/GQA cache; we size it by what the layers cache."""
    config = _config("falcon-7b", tiny=True)
    counted = ours(config, Method.PREFIX_TUNING, num_virtual_tokens=20)
    trainable, _ = theirs(config, peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=20))
    layers, hidden = config["num_hidden_layers"], config["hidden_size"]
    assert trainable == 20 * layers * 2 * hidden
    assert counted.trainable == 20 * layers * 2 * (hidden // config["num_attention_heads"])  # MQA: one KV head


@pytest.mark.parametrize("key", [entry.key for entry in model_catalog()])
def test_bitfit_counts_every_bias_parameter(key: str) -> None:
    config = tiny_config(catalog_config(next(e for e in model_catalog() if e.key == key)))
    model = build_meta_model(config)
    biases = sum(p.numel() for name, p in model.named_parameters() if re.search(r"(^|[._])bias$", name))
    counted = ours(config, Method.BITFIT)
    assert counted.trainable == biases
    assert counted.total == count_params(spec_from_config(config, name=key)).total


@pytest.mark.parametrize("key", ["llama-3.1-8b", "qwen2.5-0.5b", "gpt2", "bert-base-uncased", "mixtral-8x7b"])
def test_qlora_quantizes_what_bitsandbytes_converts(key: str) -> None:
    """transformers' bitsandbytes path replaces the nn.Linear/Conv1D modules outside ``get_keys_to_not_convert``;
    their weights are what we store in NF4 (plus, for MoE, the fused expert tensors: see core/peft.py)."""
    import torch
    from transformers.pytorch_utils import Conv1D
    from transformers.quantizers.base import get_keys_to_not_convert

    config = _config(key, tiny=key == "mixtral-8x7b")
    model = build_meta_model(config)
    skip = set(get_keys_to_not_convert(model))
    linear_weights = sum(m.weight.numel() for name, m in model.named_modules()
                         if isinstance(m, torch.nn.Linear | Conv1D) and name not in skip)
    experts = sum(p.numel() for name, p in model.named_parameters() if ".experts." in name and p.dim() == 3)
    counted = ours(config, Method.QLORA, rank=8)
    assert counted.quantized_params == linear_weights + experts
