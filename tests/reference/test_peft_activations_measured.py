"""Our activation bytes of PEFT methods against what Hugging Face PEFT on transformers actually saves for backward.

Tiny 2-layer Llama, Qwen2 and GPT-2 models (bf16 weights, SDPA) are wrapped with ``peft.get_peft_model`` (PEFT's
default ``autocast_adapter_dtype=True``: fp32 adapters on the bf16 base, no autocast, i.e. ``PURE_BF16``) and run one
training forward with labels; ``suanli.measure.activations`` counts every storage autograd keeps, parameters left out.
Methods: LoRA on q and v, LoRA on every linear with and without ``lora_dropout``, DoRA, IA3 with PEFT's default
targets, prompt tuning and prefix tuning; one fp32 and one eager-attention run. The estimate is
``activation_bytes`` with the job's ``peft_setup`` and must be within 10%; observed (PEFT 0.21.2, transformers 5.23,
torch 2.13, printed at the end of the run): within 0.2% everywhere except eager attention with LoRA on q and v
(+1.9%: in the first block, whose input carries no gradient, ``Q @ K^T`` keeps no Q because K needs no gradient).

CPU conventions handled here: PyTorch's CPU dropout keeps its mask in the input's dtype (fp32: PEFT casts the input
to the adapter dtype before ``lora_dropout``), where CUDA keeps a 1-byte bool mask (``dropout_mask_bytes``); CPU
LayerNorm keeps its statistics in the input dtype (``cpu_artefact_bytes``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.reference.summary import write_summary
from tests.reference.test_activations_measured import cpu_artefact_bytes

from suanli.core.activation_setup import ActivationSetup, Flavour
from suanli.core.activations import model_activations
from suanli.core.activations_peft import frozen_start, peft_setup
from suanli.measure.activations import build_causal_lm, measure_saved_activations
from suanli.spec.hf import spec_from_config
from suanli.spec.layout import AttentionImpl
from suanli.spec.model import ModelSpec, NormKind
from suanli.spec.training import Method, PeftConfig, PrecisionMode, TrainingJob

pytest.importorskip("torch")
pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

TOLERANCE = 0.10
SEQ, BATCH, RANK, VIRTUAL = 64, 2, 8, 8
LLAMA_NAMES = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj", "up": "up_proj",
               "down": "down_proj"}


def config(family: str) -> dict[str, Any]:
    """2 layers, hidden 128, 4 heads (Llama and Qwen2: 2 KV heads), no dropout."""
    if family == "gpt2":
        return {"model_type": "gpt2", "n_embd": 128, "n_head": 4, "n_layer": 2, "vocab_size": 512, "n_positions": 256,
                "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    return {"model_type": family, "hidden_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
            "intermediate_size": 352, "num_hidden_layers": 2, "vocab_size": 512, "max_position_embeddings": 256}


def modules(family: str, roles: tuple[str, ...]) -> list[str]:
    """PEFT target module names for our roles (GPT-2's fused c_attn answers to q and v)."""
    return ["c_attn"] if family == "gpt2" else [LLAMA_NAMES[r] for r in roles]


# name -> (PEFT config for a family, our method, our PeftConfig knobs, lora_dropout)
Case = tuple[Callable[[str], Any], Method, dict[str, Any], float]
CASES: dict[str, Case] = {
    "lora-qv": (lambda f: peft.LoraConfig(r=RANK, target_modules=modules(f, ("q", "v"))), Method.LORA,
                {"rank": RANK, "target_modules": ("q", "v")}, 0.0),
    "lora-all-linear": (lambda f: peft.LoraConfig(r=RANK, target_modules="all-linear"), Method.LORA,
                        {"rank": RANK, "target_modules": ("all-linear",)}, 0.0),
    "lora-all-linear-dropout": (lambda f: peft.LoraConfig(r=RANK, target_modules="all-linear", lora_dropout=0.05),
                                Method.LORA, {"rank": RANK, "target_modules": ("all-linear",)}, 0.05),
    "dora-qv": (lambda f: peft.LoraConfig(r=RANK, target_modules=modules(f, ("q", "v")), use_dora=True), Method.DORA,
                {"rank": RANK, "target_modules": ("q", "v")}, 0.0),
    "dora-all-linear-dropout": (lambda f: peft.LoraConfig(r=RANK, target_modules="all-linear", use_dora=True,
                                                          lora_dropout=0.1),
                                Method.DORA, {"rank": RANK, "target_modules": ("all-linear",)}, 0.1),
    "ia3": (lambda f: peft.IA3Config(task_type="CAUSAL_LM"), Method.IA3, {}, 0.0),
    "prompt-tuning": (lambda f: peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=VIRTUAL),
                      Method.PROMPT_TUNING, {"num_virtual_tokens": VIRTUAL}, 0.0),
    "prefix-tuning": (lambda f: peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=VIRTUAL),
                      Method.PREFIX_TUNING, {"num_virtual_tokens": VIRTUAL}, 0.0),
}
# (case, dtype, attention) runs for every family
RUNS = [(name, "bfloat16", "sdpa") for name in CASES] + [("lora-all-linear", "float32", "sdpa"),
                                                         ("lora-qv", "bfloat16", "eager")]


def measured_bytes(family: str, name: str, dtype: str, attention: str) -> int:
    make, *_ = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = peft.get_peft_model(build_causal_lm(config(family), attn_implementation=attention, dtype=dtype),
                                    make(family)).train()
    import torch

    ids = torch.randint(0, 512, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    return measure_saved_activations(model, lambda m: m(input_ids=ids, labels=ids, use_cache=False).loss).total_bytes


def estimated_bytes(family: str, name: str, dtype: str, attention: str) -> float:
    _, method, knobs, dropout = CASES[name]
    spec = spec_from_config(config(family), name=family)
    precision = PrecisionMode.PURE_BF16 if dtype == "bfloat16" else PrecisionMode.FP32
    job = TrainingJob(seq=SEQ, method=method, peft=PeftConfig(**knobs), precision=precision)
    setup = ActivationSetup(seq=SEQ + (VIRTUAL if method is Method.PROMPT_TUNING else 0), micro_batch=BATCH,
                            flavour=Flavour.HUGGINGFACE, act_bytes=2.0 if dtype == "bfloat16" else 4.0,
                            attention=AttentionImpl(attention), dropout_mask_bytes=4.0,  # CPU: an fp32 mask
                            peft=peft_setup(spec, job, lora_dropout=dropout))
    return model_activations(spec, setup).total_bytes + _cpu_artefacts(spec, setup)


def _cpu_artefacts(spec: ModelSpec, s: ActivationSetup) -> float:
    """CPU LayerNorm statistics in the input dtype, for the LayerNorms that save: a frozen model's first input
    norm saves nothing, so its share of ``cpu_artefact_bytes`` is added back."""
    artefact = cpu_artefact_bytes(spec, s)
    if frozen_start(s) and spec.layers[0].norms[0].kind is NormKind.LAYER_NORM:
        artefact += s.seq * s.micro_batch * 2 * (4.0 - s.act_bytes)
    return artefact


@pytest.fixture(scope="module")
def observed(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    """estimate / measured - 1 per run; the largest |error| is printed when the module's tests are done."""
    errors: dict[str, float] = {}
    yield errors
    if errors:
        worst = max(errors, key=lambda k: abs(errors[k]))
        table = ", ".join(f"{run} {error:+.2%}" for run, error in sorted(errors.items()))
        write_summary(request, f"PEFT activations, estimate/measured - 1: {table}; worst {worst} {errors[worst]:+.2%}")


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize(("name", "dtype", "attention"), RUNS, ids=[f"{n}-{d}-{a}" for n, d, a in RUNS])
def test_peft_estimate_matches_saved_tensors(family: str, name: str, dtype: str, attention: str,
                                             observed: dict[str, float]) -> None:
    measured = measured_bytes(family, name, dtype, attention)
    ours = estimated_bytes(family, name, dtype, attention)
    observed[f"{family}/{name}/{dtype}/{attention}"] = ours / measured - 1
    assert ours == pytest.approx(measured, rel=TOLERANCE)


def test_a_frozen_base_saves_less_than_full_training() -> None:
    """LoRA on q and v keeps fp32 copies of their input, yet saves less than full training of the same model: the
    frozen linears' inputs, the norms' normalised outputs and the first block's input norm are not kept."""
    import torch

    model = build_causal_lm(config("llama"), attn_implementation="sdpa", dtype="bfloat16")
    ids = torch.randint(0, 512, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    full = measure_saved_activations(model, lambda m: m(input_ids=ids, labels=ids, use_cache=False).loss)
    lora = measured_bytes("llama", "lora-qv", "bfloat16", "sdpa")
    assert lora < full.total_bytes
    assert estimated_bytes("llama", "lora-qv", "bfloat16", "sdpa") < full.total_bytes
