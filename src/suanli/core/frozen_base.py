"""How a PEFT job stores its frozen base when the checkpoint is quantized (``ModelSpec.quantization``).

HF PEFT adds adapters on top of layers that stay quantized for bitsandbytes (4- and 8-bit), GPTQ and AWQ
checkpoints (``peft/tuners/lora/bnb.py``, ``gptq.py``, ``awq.py``), so the frozen base keeps the checkpoint's
layout: each block linear in it, except the modules the checkpoint leaves out (``modules_to_not_convert``), and
embeddings, norms, routers and the head in bf16. PEFT has no LoRA layer over FP8 block or MXFP4 weights: such
checkpoints are dequantized to the compute dtype to be fine-tuned (gpt-oss: ``Mxfp4Config(dequantize=True)`` in
OpenAI's fine-tuning cookbook), and their base counts in bf16 like any other.

QLoRA (``--method qlora``) quantizes the base to NF4 itself (``core.peft.qlora_frozen_storage``) and is not
handled here.
"""

from __future__ import annotations

from dataclasses import dataclass

from suanli.core.params import count_params
from suanli.core.peft import Projection, model_linears
from suanli.spec.model import ModelSpec
from suanli.spec.precision import Family, NumberFormat
from suanli.spec.training import Method, TrainingJob

_TRAINED_OVER = (Family.GPTQ, Family.AWQ, Family.NF4, Family.INTEGER)  # layouts PEFT keeps quantized under adapters
_BF16_BYTES = 2.0
_ROLES = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output", "q_a": "attn_q_a", "q_b": "attn_q_b",
          "kv_a": "attn_kv_a_mqa", "kv_b": "attn_kv_b", "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}
_GROUPS = frozenset({"attention", "mlp", "experts", "shared_experts", "mixer"})  # block components quantized


@dataclass(frozen=True, slots=True, kw_only=True)
class FrozenBase:
    """The frozen base's layout: ``weights`` for ``quantized_params`` of it, bf16 for the rest."""

    weights: NumberFormat
    quantized_params: int
    frozen_bytes: float
    dequantized: bool  # the checkpoint's layout cannot be trained over; counted in bf16


def frozen_base(spec: ModelSpec, job: TrainingJob) -> FrozenBase | None:
    """The checkpoint's storage of a PEFT job's frozen base, or None (not quantized, full training, QLoRA)."""
    q = spec.quantization
    if q is None or not job.is_peft or job.method is Method.QLORA:
        return None
    total = count_params(spec).total
    if q.weights.family not in _TRAINED_OVER:
        return FrozenBase(weights=q.weights, quantized_params=0, frozen_bytes=total * _BF16_BYTES, dequantized=True)
    quantized, bits = 0, 0.0
    for p in model_linears(spec):
        if p.name != "router" and p.component in _GROUPS and not _kept(p, q.unquantized):
            quantized += p.count * p.in_features * p.out_features
            bits += p.count * q.weights.tensor_bits(out_features=p.out_features, in_features=p.in_features)
    return FrozenBase(weights=q.weights, quantized_params=quantized, dequantized=False,
                      frozen_bytes=bits / 8 + (total - quantized) * _BF16_BYTES)


def _kept(p: Projection, unquantized: frozenset[str]) -> bool:
    group, role = p.component, _ROLES.get(p.name, p.name)
    return group in unquantized or role in unquantized or f"{group}/{role}" in unquantized
