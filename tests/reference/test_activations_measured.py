"""Our HUGGINGFACE-flavour activation bytes against what transformers actually saves for backward.

``suanli.measure.activations`` runs a real training forward pass (labels given, so ``ForCausalLMLoss`` runs)
of a tiny model on the CPU and counts, through ``torch.autograd.graph.saved_tensors_hooks``, every storage
autograd keeps, once, parameters left out. Every supported ``model_type`` is measured: a tiny config of a catalog
model (``tiny_config``), at micro-batch 2 and at micro-batch 1 with seq 64 (where matmul keeps views that a
batch of 2 copies, and the tiny configs' 64-token sliding windows bite), eager and SDPA (Gemma 2 has no SDPA in
transformers), bf16, and fp32 at one shape; BERT as an encoder. The estimate must be within 10%. Observed
(transformers 5.23, torch 2.13, printed at the end of the run): within 0.01% for every family but two, whose
residue the model spec cannot see: GPT-NeoX (Pythia) +1.1% (``rotary_pct``: its RoPE tables span a quarter of
head_dim, not all of it) and DeepSeek-V2 −2.1% (its group-limited router keeps a 1-byte mask per token and
expert; V2-Lite's greedy one does not). Both residues shrink to < 0.1% at real model sizes.

CPU-only conventions, which the estimate (following CUDA) does not share, and how they are handled here:

- PyTorch's CPU dropout keeps a compute-dtype mask (``input * bernoulli_noise``), not native_dropout's 1-byte
  bool mask: ``dropout_mask_bytes`` = the compute dtype's bytes;
- CPU SDPA has no flash kernel for attention dropout or for value heads shorter than query/key heads (MLA); the
  math fallback it then takes keeps fp32 q, k, v and S×S probabilities, which CUDA's flash / memory-efficient
  kernels do not. SDPA runs therefore use attention dropout 0 and, for DeepSeek, v_head_dim = the q/k head dim
  (``cpu_sdpa_config``). Falcon-7B's SDPA math fallback is not CPU-only (its one K/V head needs ``enable_gqa``,
  which Falcon does not pass) and is modelled;
- ``cpu_artefact_bytes``: CPU LayerNorm keeps its mean and 1/std in the input dtype (CUDA: fp32); and the CPU
  flash kernel also serves masked SDPA, allocating its output like q, so a head-major q (Phi-3 once its window
  bites) costs a copy for o_proj that CUDA's memory-efficient kernel (token-major output) does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.reference.hf_reference import load_catalog_config, tiny_config
from tests.reference.summary import write_summary

from suanli.core.activation_setup import FP32_BYTES, ActivationSetup, LossImpl
from suanli.core.activations import ActivationBreakdown, Flavour, activation_bytes, attention_path
from suanli.core.activations_hf import HEAD_MAJOR_QUERY, LAYER_NORM_ON_FP32_COPY
from suanli.measure.activations import measure_causal_lm, measure_encoder, measure_saved_activations
from suanli.spec.hf import spec_from_config
from suanli.spec.layout import AttentionImpl, Recompute
from suanli.spec.model import ModelSpec, NormKind

pytest.importorskip("torch")  # neither suanli nor hf_reference imports torch at import time
pytest.importorskip("transformers")

TOLERANCE = 0.10
DTYPE_BYTES = {"float32": 4.0, "bfloat16": 2.0}
HIDDEN_DROPOUT_KEYS = ("resid_pdrop", "embd_pdrop", "hidden_dropout", "residual_dropout", "embedding_dropout",
                       "dropout", "hidden_dropout_prob")
ATTENTION_DROPOUT_KEYS = ("attn_pdrop", "attention_dropout", "attention_probs_dropout_prob")
# (seq, micro_batch, hidden, heads, kv_heads): MHA, GQA 2:1 and 4:1, MQA-like 1 KV head
SHAPES = [(32, 2, 64, 4, 2), (64, 1, 128, 8, 2), (128, 4, 64, 4, 1), (16, 8, 96, 6, 6)]
# one catalog model per model_type, two where the family has two layouts (MHA/GQA, MQA/new Falcon, greedy/grouped
# routers); (seq, micro_batch) shapes: the first also in fp32
CATALOG_MODELS = ["llama-3.2-1b", "mistral-7b-v0.1", "mixtral-8x7b", "qwen2.5-0.5b", "qwen1.5-moe-a2.7b", "qwen3-0.6b",
                  "qwen3-30b-a3b", "gemma-7b", "gemma-2-2b", "gemma-3-1b", "phi-3-mini", "phi-3-medium",
                  "deepseek-v2-lite", "deepseek-v2", "deepseek-v3", "gpt2", "pythia-6.9b", "opt-1.3b", "falcon-7b",
                  "falcon-40b", "olmo-7b", "olmo-2-7b", "starcoder2-3b"]
# recent dense families (spec/families/dense_recent.py): Cohere's fp32 LayerNorm, xIELU, NoPE layers, ...
CATALOG_MODELS += ["command-r-v01", "command-r7b", "internlm3-8b", "smollm3-3b", "olmo-3-7b", "seed-oss-36b",
                   "exaone-4.0-32b", "apertus-8b", "afm-4.5b", "glm-4-9b-0414", "ernie-4.5-0.3b", "hunyuan-7b"]
FAMILY_SHAPES = [(32, 2), (64, 1)]
NO_SDPA = frozenset({"gemma2"})  # Gemma2ForCausalLM refuses attn_implementation="sdpa"


def decoder_config(family: str, seq: int, hidden: int, heads: int, kv_heads: int, *, eager: bool) -> dict[str, Any]:
    """A 2-layer model of ``family``; GPT-2 with its default 0.1 dropouts (attention dropout only in eager)."""
    if family == "gpt2":
        return {"model_type": "gpt2", "n_embd": hidden, "n_head": heads, "n_layer": 2, "vocab_size": 512,
                "n_positions": seq, "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1 if eager else 0.0}
    return {"model_type": family, "hidden_size": hidden, "num_attention_heads": heads,
            "num_key_value_heads": kv_heads, "intermediate_size": hidden * 11 // 4, "num_hidden_layers": 2,
            "vocab_size": 512, "max_position_embeddings": seq}


def cpu_sdpa_config(config: dict[str, Any], attention: str) -> dict[str, Any]:
    """For SDPA on the CPU: no attention dropout, and MLA value heads as long as the q/k heads, so the CPU flash
    kernel runs as CUDA's kernels would (see the module docstring)."""
    if attention != "sdpa":
        return config
    config = {**config, **{key: 0.0 for key in ATTENTION_DROPOUT_KEYS if key in config}}
    if config.get("kv_lora_rank"):
        config["v_head_dim"] = config["qk_nope_head_dim"] + config["qk_rope_head_dim"]
    return config


def setup(config: dict[str, Any], *, seq: int, micro_batch: int, attention: str, dtype: str,
          recompute: Recompute = Recompute.NONE) -> ActivationSetup:
    act = DTYPE_BYTES[dtype]
    return ActivationSetup(seq=seq, micro_batch=micro_batch, flavour=Flavour.HUGGINGFACE, act_bytes=act,
                           attention=AttentionImpl(attention), recompute=recompute,
                           hidden_dropout=_dropout(config, HIDDEN_DROPOUT_KEYS),
                           attention_dropout=_dropout(config, ATTENTION_DROPOUT_KEYS), dropout_mask_bytes=act)


def estimate(config: dict[str, Any], *, seq: int, micro_batch: int, attention: str, dtype: str,
             recompute: Recompute = Recompute.NONE) -> ActivationBreakdown:
    s = setup(config, seq=seq, micro_batch=micro_batch, attention=attention, dtype=dtype, recompute=recompute)
    return activation_bytes(spec_from_config(config, name="tiny"), seq=s.seq, micro_batch=s.micro_batch,
                            flavour=s.flavour, act_bytes=s.act_bytes, attention=s.attention, recompute=s.recompute,
                            hidden_dropout=s.hidden_dropout, attention_dropout=s.attention_dropout,
                            dropout_mask_bytes=s.dropout_mask_bytes)


def cpu_artefact_bytes(spec: ModelSpec, s: ActivationSetup) -> float:
    """Bytes a CPU run saves beyond (negative: short of) the estimate, which follows CUDA: LayerNorm statistics
    in the input dtype, and the o_proj copy of a head-major output from the CPU flash kernel where CUDA would
    take the memory-efficient one (an SDPA mask)."""
    tokens = s.seq * s.micro_batch
    norms = [n for layer in spec.layers for n in layer.norms] + [spec.final_norm, spec.embedding_norm]
    layer_norms = sum(1 for n in norms if n is not None and n.kind is not NormKind.RMS_NORM)
    stats = 0.0 if spec.model_type in LAYER_NORM_ON_FP32_COPY else layer_norms * tokens * 2 * (FP32_BYTES - s.act_bytes)
    copies = sum(tokens * layer.attention.num_heads * layer.attention.v_head_dim * s.act_bytes
                 for layer in spec.layers if spec.model_type in HEAD_MAJOR_QUERY
                 and attention_path(layer.attention, spec.model_type, s).explicit_mask)
    return copies - stats


def cpu_estimate(config: dict[str, Any], **shape: Any) -> tuple[float, ActivationBreakdown]:
    """Our estimate of what the CPU run saves (with ``cpu_artefact_bytes``), and the breakdown behind it."""
    s = setup(config, **shape)
    breakdown = estimate(config, **shape)
    return breakdown.total_bytes + cpu_artefact_bytes(spec_from_config(config, name="tiny"), s), breakdown


def _dropout(config: dict[str, Any], keys: tuple[str, ...]) -> float:
    return max(float(config.get(key) or 0.0) for key in keys)


@pytest.fixture(scope="module")
def observed(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    """The largest |error| seen per model_type; printed when the module's tests are done."""
    errors: dict[str, float] = {}
    yield errors
    if errors:
        table = ", ".join(f"{family} {error:.2%}" for family, error in sorted(errors.items()))
        write_summary(request, f"activations, max |estimate/measured - 1| by model_type: {table}")


def _record(observed: dict[str, float], family: str, ours: float, measured: int) -> None:
    observed[family] = max(observed.get(family, 0.0), abs(ours / measured - 1))


GRID = [pytest.param(family, shape, attention, dtype, id=f"{family}-s{shape[0]}b{shape[1]}h{shape[2]}a{shape[3]}"
                     f"kv{shape[4]}-{attention}-{dtype}")
        for shape in SHAPES for family in ("llama", "qwen2", "gpt2") for attention in ("eager", "sdpa")
        for dtype in ("float32", "bfloat16")]


@pytest.mark.parametrize(("family", "shape", "attention", "dtype"), GRID)
def test_estimate_matches_saved_tensors(family: str, shape: tuple[int, ...], attention: str, dtype: str) -> None:
    seq, micro_batch, hidden, heads, kv_heads = shape
    config = decoder_config(family, seq, hidden, heads, kv_heads, eager=attention == "eager")
    measured = measure_causal_lm(config, seq=seq, micro_batch=micro_batch, attn_implementation=attention,
                                 dtype=dtype)
    ours, breakdown = cpu_estimate(config, seq=seq, micro_batch=micro_batch, attention=attention, dtype=dtype)
    assert ours == pytest.approx(measured.total_bytes, rel=TOLERANCE)
    assert breakdown.per_layer_bytes[-1] == pytest.approx(measured.per_layer[-1], rel=TOLERANCE)


FAMILY_GRID = [pytest.param(key, attention, dtype, id=f"{key}-{attention}-{dtype}")
               for key in CATALOG_MODELS for attention in ("eager", "sdpa") for dtype in ("bfloat16", "float32")
               if not (attention == "sdpa" and load_catalog_config(key)["model_type"] in NO_SDPA)]


@pytest.mark.parametrize(("key", "attention", "dtype"), FAMILY_GRID)
def test_every_family_matches_saved_tensors(key: str, attention: str, dtype: str, observed: dict[str, float]) -> None:
    """Norm dtypes, fused projections, sliding-window masks, MQA, MLA, routers and expert dispatch, soft-caps,
    parallel blocks, dropout placement: each family's transformers code path, at two shapes (one in fp32)."""
    config = cpu_sdpa_config(tiny_config(load_catalog_config(key)), attention)
    for seq, micro_batch in FAMILY_SHAPES if dtype == "bfloat16" else FAMILY_SHAPES[:1]:
        measured = measure_causal_lm(config, seq=seq, micro_batch=micro_batch, attn_implementation=attention,
                                     dtype=dtype)
        ours, breakdown = cpu_estimate(config, seq=seq, micro_batch=micro_batch, attention=attention, dtype=dtype)
        _record(observed, config["model_type"], ours, measured.total_bytes)
        assert ours == pytest.approx(measured.total_bytes, rel=TOLERANCE), (seq, micro_batch)
        assert breakdown.per_layer_bytes[-1] == pytest.approx(measured.per_layer[-1], rel=TOLERANCE)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_bert_encoder(attention: str, dtype: str, observed: dict[str, float]) -> None:
    """Post-norm blocks, embedding LayerNorm and dropout, the pooler (which keeps the whole last hidden state)."""
    config = cpu_sdpa_config(tiny_config(load_catalog_config("bert-base-uncased")), attention)
    measured = measure_encoder(config, seq=32, micro_batch=2, attn_implementation=attention, dtype=dtype)
    ours, _ = cpu_estimate(config, seq=32, micro_batch=2, attention=attention, dtype=dtype)
    _record(observed, "bert", ours, measured.total_bytes)
    assert ours == pytest.approx(measured.total_bytes, rel=TOLERANCE)


def test_gradient_checkpointing_is_full_recompute() -> None:
    import torch

    from suanli.measure.activations import build_causal_lm

    config = decoder_config("llama", 32, 64, 4, 2, eager=False)
    model = build_causal_lm(config, attn_implementation="sdpa", dtype="bfloat16")
    model.activation_checkpointing_enable({"use_reentrant": False})
    ids = torch.randint(0, 512, (2, 32))
    measured = measure_saved_activations(model, lambda m: m(input_ids=ids, labels=ids, use_cache=False).loss,
                                         backward=True)
    ours = estimate(config, seq=32, micro_batch=2, attention="sdpa", dtype="bfloat16", recompute=Recompute.FULL)
    assert ours.total_bytes == pytest.approx(measured.total_bytes, rel=TOLERANCE)
    assert measured.per_layer == (32 * 2 * 64 * 2,) * 2  # each block keeps only its bf16 input
    assert measured.unpacked_bytes == measured.total_bytes  # backward read back everything that was saved


def test_views_count_once_and_parameters_not_at_all() -> None:
    import torch

    linear = torch.nn.Linear(8, 8, bias=False)
    x = torch.randn(4, 8, requires_grad=True)

    def run(model: torch.nn.Module) -> torch.Tensor:
        y = model(x)  # saves x (and the weight, which is a parameter)
        z = y[:2] * y[2:]  # saves two views of y's storage
        return z.sum()

    measured = measure_saved_activations(linear, run)
    assert measured.total_bytes == 2 * 4 * 8 * 4  # x and y, fp32, once each
    assert measured.parameter_bytes_excluded == 8 * 8 * 4


def test_a_freed_storage_address_is_recorded_afresh() -> None:
    """The allocator hands a freed address to the next tensor: what is packed at an address after everything
    packed there was freed is a new storage (a bool view of the same memory stands in for the new tensor)."""
    import torch

    memory = torch.zeros(64)
    weight = torch.randn(64, requires_grad=True)

    def run(model: torch.nn.Module) -> torch.Tensor:
        (weight * memory).sum()  # saves fp32 ``memory``; the branch is dropped at once
        return weight.masked_fill(memory.view(torch.bool)[:64], 0.0).sum()  # saves a bool mask at that address

    measured = measure_saved_activations(torch.nn.Identity(), run)
    assert measured.by_dtype == {"bool": 64 * 4}  # the storage is the fp32 tensor's 256 bytes


# --- the loss's workspace, replayed allocation by allocation ---------------------------------------------------

LOSS_VOCAB, LOSS_TOKENS = 32_000, 1_024  # logits dominate: the blocks of a 1-layer, 64-wide model are < 1% of them


def _loss_model(dtype: str) -> Any:
    from suanli.measure.activations import build_causal_lm

    config = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 128, "num_hidden_layers": 1, "vocab_size": LOSS_VOCAB,
              "max_position_embeddings": LOSS_TOKENS}
    return config, build_causal_lm(config, attn_implementation="sdpa", dtype=dtype)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("impl", [LossImpl.TRANSFORMERS, LossImpl.TRANSFORMERS_KEEP_LOGITS, LossImpl.CHUNKED])
def test_loss_peak_is_saved_bytes_plus_workspace(dtype: str, impl: LossImpl) -> None:
    """Live storages op by op through forward and backward (``measure_peak_bytes``): the peak is what we save
    plus ``peak_extra_bytes``. transformers' ``ForCausalLMLoss`` with the caller dropping the logits (HF Trainer)
    or holding them; torchtune's ``CEWithChunkedOutputLoss`` replayed on the same model (8 chunks, each projected
    and upcast on its own, ``del logits`` before backward)."""
    import torch
    import torch.nn.functional as F

    from suanli.core.activations_head import TORCHTUNE_OUTPUT_CHUNKS
    from suanli.measure.activations import measure_peak_bytes

    config, model = _loss_model(dtype)
    ids = torch.randint(0, LOSS_VOCAB, (1, LOSS_TOKENS), generator=torch.Generator().manual_seed(0))
    held: list[Any] = []

    def transformers_loss(m: torch.nn.Module) -> torch.Tensor:
        out = m(input_ids=ids, labels=ids, use_cache=False)
        if impl is LossImpl.TRANSFORMERS_KEEP_LOGITS:
            held.append(out.logits)
        loss: torch.Tensor = out.loss
        return loss

    def chunked_loss(m: Any) -> torch.Tensor:
        hidden = m.model(input_ids=ids, use_cache=False).last_hidden_state
        logits = [m.lm_head(chunk) for chunk in hidden.tensor_split(TORCHTUNE_OUTPUT_CHUNKS, dim=1)]
        labels = [chunk.reshape(-1) for chunk in ids.tensor_split(TORCHTUNE_OUTPUT_CHUNKS, dim=1)]
        total = sum(F.cross_entropy(lc.reshape(-1, LOSS_VOCAB).float(), yc, reduction="sum")
                    for lc, yc in zip(logits, labels, strict=True))
        return total / LOSS_TOKENS

    peak = measure_peak_bytes(model, chunked_loss if impl is LossImpl.CHUNKED else transformers_loss)
    ours = activation_bytes(spec_from_config(config, name="t"), seq=LOSS_TOKENS, micro_batch=1,
                            flavour=Flavour.HUGGINGFACE, act_bytes=DTYPE_BYTES[dtype],
                            attention=AttentionImpl.SDPA, loss=impl)
    assert ours.total_bytes + ours.peak_extra_bytes == pytest.approx(peak.peak_bytes, rel=0.02)
