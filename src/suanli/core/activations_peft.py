"""What a PEFT method's model saves for backward, op by op, as Hugging Face PEFT 0.21 runs it on transformers 5: a
frozen base that saves less than full training, plus what each adapter keeps. Not "full fine-tuning plus the
adapters". Checked against saved-tensor measurements (``tests/reference/test_peft_activations_measured.py``).

The frozen base (``core/activations.py`` asks ``ActivationSetup.linears_save_input`` and ``block_grad``):

- A frozen linear keeps no input: autograd saves a matmul operand only for the other operand's gradient, and the
  frozen weight needs none. Gone: the QKV input, the MLP input, the down projection's input, the LM head's input,
  and the output projection's input where only it kept it (eager attention; a fused SDPA kernel keeps its output
  anyway). bitsandbytes' 4-bit matmul (QLoRA) is the same since 0.43.2: ``MatMul4Bit`` kept its input A in
  ``ctx.tensors = (A, B)`` until PR #1270 (merged July 2024) made it ``(None, B)`` (bitsandbytes
  ``bitsandbytes/autograd/_functions.py``); Megatron's linear layers save their input regardless.
- A frozen RMSNorm weight needs no normalised tensor: the norm keeps its fp32 input copy and 1/rms only. A frozen
  embedding keeps no token ids.
- Nothing before the first trainable op carries a gradient, so nothing there is saved: in the first block the input
  norm saves nothing, the attention saves only if q, k or v is adapted (or prefix keys/values join it), the MLP
  only once the residual carries a gradient (``block_grad``). Prompt tuning's trainable embeddings, and BitFit's
  biases, make every block carry one.

What each adapter keeps (``adapter_bytes``, per token unless said):

- LoRA (``lora.Linear.forward``: ``x = self._cast_input_dtype(x, lora_A.weight.dtype)``, then
  ``result + lora_B(lora_A(dropout(x))) * scaling``). lora_A keeps its input: PEFT's fp32 adapters
  (``autocast_adapter_dtype=True``) on a bf16 base get their own fp32 copy, 4 bytes per input feature per adapter,
  not shared between q, k and v; under ``torch.autocast`` F.linear instead keeps a compute-dtype copy per adapter;
  where adapters run in the compute dtype (DeepSpeed and FSDP cast the whole module; fp32 training) the input
  itself is kept, once per distinct input and free when the base keeps it already. lora_B keeps A's output (r,
  adapter dtype, or the compute dtype under autocast). ``lora_dropout`` > 0: each adapter keeps its dropout mask
  and the dropped input instead. QLoRA's ``bnb.Linear4bit`` skips the cast under autocast; counted as LoRA.
- DoRA (``DoraLinearLayer.forward``): also the base output (compute dtype) and the LoRA output (adapter dtype), out
  each, and per layer three out-sized fp32 vectors. Its forward builds an in×in identity, B·A, a copy of W in the
  adapter dtype and W + s·B·A for the detached column norm: transient, (in² + 4·out·in) elements per layer.
- IA3 (``ia3.Linear.forward``): the base output it scales (out, compute dtype), or for a feed-forward target its
  input cast to the vector's dtype (in, fp32).
- Houlsby bottleneck adapters (not in PEFT): their input and the bottleneck before and after the nonlinearity.
- Prompt tuning: n virtual tokens prepended to every sequence, logits and loss over all of them (PEFT pads the labels
  with -100): every count at seq + n. Prefix tuning / P-tuning v2: trainable past keys and values in every layer;
  the keys are seq + n long and transformers passes SDPA an explicit mask (query and key lengths differ).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from suanli.core.activation_setup import (
    FP32_BYTES,
    ActivationSetup,
    AdapterKind,
    Flavour,
    Lift,
    PeftSetup,
    act_num,
    activation_dtype_bytes,
    rank_tokens,
    region_tokens,
)
from suanli.core.activations_hf import HF_ACTIVATION_TENSORS, Kernel, hf_attention_path
from suanli.core.peft import IA3_DEFAULTS, IA3_PAPER, Projection, layer_linears, model_linears, selects
from suanli.quantity import Num, plain
from suanli.spec.model import Layer, Mlp, ModelSpec, Moe
from suanli.spec.training import Method, PrecisionMode, TrainingJob

BNB_4BIT_SAVES_INPUT = False  # bitsandbytes >= 0.43.2 (PR #1270): MatMul4Bit keeps only the packed weight

#: What each method inserts (``AdapterKind``); DyLoRA and AdaLoRA run LoRA's ops at their maximum rank.
METHOD_ADAPTER = MappingProxyType({
    Method.LORA: AdapterKind.LORA, Method.QLORA: AdapterKind.LORA, Method.DYLORA: AdapterKind.LORA,
    Method.ADALORA: AdapterKind.LORA, Method.DORA: AdapterKind.DORA, Method.IA3: AdapterKind.IA3,
    Method.ADAPTER: AdapterKind.BOTTLENECK})

#: Precision modes whose framework casts the whole module, adapters included, to the compute dtype (DeepSpeed's bf16
#: engine, FSDP MixedPrecision, Megatron); elsewhere PEFT keeps fp32 adapters. AMP runs them under torch.autocast.
MODULE_CAST = frozenset({PrecisionMode.MIXED_FP16, PrecisionMode.MIXED_BF16, PrecisionMode.MIXED_FP32_GRADS,
                         PrecisionMode.FP8})
AUTOCAST = frozenset({PrecisionMode.AMP_FP16, PrecisionMode.AMP_BF16})

_LORA_KINDS = frozenset({AdapterKind.LORA, AdapterKind.DORA})
_VIRTUAL_TOKENS = frozenset({Method.PROMPT_TUNING, Method.PREFIX_TUNING, Method.P_TUNING_V2})
_ATTENTION_INPUT = frozenset({"q", "k", "v", "qkv", "q_a", "kv_a"})
_ROW_PARALLEL = frozenset({"o", "down"})  # split along their input under tensor parallelism


def peft_setup(spec: ModelSpec, job: TrainingJob, *, flavour: Flavour = Flavour.HUGGINGFACE,
               lora_dropout: float = 0.0, bnb_saves_input: bool = BNB_4BIT_SAVES_INPUT) -> PeftSetup | None:
    """The frozen base and adapters of ``job.method`` (None for full training). ``lora_dropout`` is PEFT's
    ``LoraConfig.lora_dropout`` (default 0); ``bnb_saves_input``: QLoRA on bitsandbytes < 0.43.2, whose 4-bit
    matmul kept its input. BitFit is taken to train a bias before the first block (an embedding LayerNorm's, or
    the first projection's), so gradients flow everywhere."""
    if not job.is_peft:
        return None
    method, knobs = job.method, job.peft
    act = activation_dtype_bytes(job.precision)
    kind = METHOD_ADAPTER.get(method, AdapterKind.NONE)
    targets, feedforward = frozenset(knobs.target_modules), frozenset[str]()
    if kind is AdapterKind.IA3:
        targets, feedforward = IA3_DEFAULTS.get(spec.model_type, IA3_PAPER)
    prefix = method in (Method.PREFIX_TUNING, Method.P_TUNING_V2)
    return PeftSetup(
        kind=kind, targets=targets if kind is not AdapterKind.NONE else frozenset(), feedforward=feedforward,
        rank=knobs.rank, adapter_bytes=act if job.precision in MODULE_CAST else FP32_BYTES,
        autocast=job.precision in AUTOCAST, dropout=lora_dropout if kind in _LORA_KINDS else 0.0,
        base_saves_input=flavour is Flavour.MEGATRON or (method is Method.QLORA and bnb_saves_input),
        quantized_base=method is Method.QLORA,
        grad_from_input=method in (Method.PROMPT_TUNING, Method.BITFIT),
        prefix_tokens=knobs.num_virtual_tokens if prefix else 0,
        bottleneck=knobs.adapter_size if kind is AdapterKind.BOTTLENECK else 0)



def extra_sequence_tokens(job: TrainingJob) -> int:
    """Virtual tokens prompt tuning prepends to every sequence (the layers and the loss run on seq + n)."""
    return job.peft.num_virtual_tokens if job.method is Method.PROMPT_TUNING else 0


# --- where gradients flow in the first block -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockGrad:
    """Which tensors of a block carry a gradient: its input (the first norm saves), q/k/v (the attention saves),
    the residual after attention (later norms, the MLP input), the gate/up outputs (the MLP intermediates)."""

    input: bool = True
    attention: bool = True
    post: bool = True
    mlp: bool = True


ALL_GRAD = BlockGrad()


def block_grad(layer: Layer, hidden: int, model_type: str, s: ActivationSetup, *, first: bool) -> BlockGrad:
    """Every block carries gradients, except the first one of a frozen model whose input does not
    (``PeftSetup.grad_from_input`` false): there they start at the first adapted projection."""
    p = s.peft
    if p is None or not first or p.grad_from_input:
        return ALL_GRAD
    roles = {role for lin in _adapted(layer, hidden, model_type, p) for role in lin.roles}
    attention = bool(roles & {"q", "k", "v"}) or p.prefix_tokens > 0
    post = attention or "o" in roles or p.kind is AdapterKind.BOTTLENECK
    return BlockGrad(input=False, attention=attention, post=post, mlp=post or bool(roles & {"gate", "up"}))


def frozen_start(s: ActivationSetup) -> bool:
    """Whether the first block starts without gradients (a frozen model whose embeddings do not train)."""
    return s.peft is not None and not s.peft.grad_from_input


# --- what the adapters keep ----------------------------------------------------------------------------------


def _adapted(layer: Layer, hidden: int, model_type: str, p: PeftSetup) -> list[Projection]:
    if p.kind in (AdapterKind.NONE, AdapterKind.BOTTLENECK):
        return []
    return [lin for lin in layer_linears(layer, hidden, model_type) if selects(lin, p.targets)]


def _input_id(lin: Projection) -> str:
    """The tensor a projection reads: adapters on one tensor share it when they keep it uncast."""
    if lin.expert:
        return "expert_hidden" if lin.name == "down" else "expert_input"
    if lin.name in _ATTENTION_INPUT:
        return "attention_input"
    if lin.name in ("o", "q_b", "kv_b"):
        return {"o": "attention_output", "q_b": "q_latent", "kv_b": "kv_latent"}[lin.name]
    return f"{lin.component}_hidden" if lin.name == "down" else "mlp_input"


def _shape(lin: Projection, layer: Layer, s: ActivationSetup, lift: Lift[Num]) -> tuple[Num, Num, Num]:
    """(Rows, input width, output width) of one adapted projection on this GPU: hidden-size inputs over the
    region's tokens, routed experts over tokens·top_k slots; row-parallel inputs and column-parallel outputs
    split tp ways."""
    tp = lift(s.tp, "tp")
    if lin.expert and isinstance(layer.ffn, Moe):
        rows = rank_tokens(s, lift) * lift(layer.ffn.top_k, "top_k")
    elif _input_id(lin) in ("attention_input", "mlp_input"):
        rows = region_tokens(s, lift)
    else:
        rows = rank_tokens(s, lift)
    row_parallel = lin.name in _ROW_PARALLEL
    n_in, n_out = lift(lin.in_features, "in_features"), lift(lin.out_features, "out_features")
    return rows, n_in / tp if row_parallel else n_in, n_out if row_parallel else n_out / tp


def adapter_bytes(layer: Layer, hidden: int, model_type: str, s: ActivationSetup, lift: Lift[Num], *,
                  kept: frozenset[str], grad: BlockGrad = ALL_GRAD) -> dict[str, Num]:
    """What one block's adapters keep for backward (module docstring). ``kept``: the inputs (``_input_id``) the
    frozen base keeps already in the compute dtype, which an uncast adapter input shares. ``grad``: where the
    block carries gradients; dropout keeps no mask for an input that carries none."""
    p = s.peft
    if p is None or p.kind is AdapterKind.NONE:
        return {}
    act = act_num(s, lift)
    if p.kind is AdapterKind.BOTTLENECK:
        width = lift(hidden, "hidden_size") + 2 * lift(p.bottleneck, "adapter_size")
        return {"adapters": 2 * region_tokens(s, lift) * width * act}
    parts: list[Num] = []
    shared: dict[str, Num] = {}
    for lin in _adapted(layer, hidden, model_type, p):
        rows, n_in, n_out = _shape(lin, layer, s, lift)
        if p.kind is AdapterKind.IA3:
            fp32_input = bool(lin.roles & p.feedforward)
            parts.append(rows * n_in * lift(p.adapter_bytes, "adapter_bytes") if fp32_input else rows * n_out * act)
            continue
        input_grad = _input_grad(_input_id(lin), grad)
        per_adapter = _lora_input_bytes(p, s, lift, mask=input_grad)
        if per_adapter is None:
            if _input_id(lin) not in kept:
                shared[_input_id(lin)] = rows * n_in * act
        else:
            parts.append(rows * n_in * per_adapter)
        inter = act if p.autocast else lift(p.adapter_bytes, "adapter_bytes")
        parts.append(rows * lift(p.rank * lin.branches, "rank") * inter)
        if p.kind is AdapterKind.DORA:
            parts.append(_dora_bytes(p, lift, rows, n_in, n_out, act, inter, input_grad=input_grad))
    parts.extend(shared.values())
    return {"adapters": sum(parts[1:], parts[0])} if parts else {}


def _lora_input_bytes(p: PeftSetup, s: ActivationSetup, lift: Lift[Num], *, mask: bool) -> Num | None:
    """Bytes per input feature lora_A keeps per adapter: with dropout the dropped input and (``mask``: where the
    input carries a gradient) the dropout mask; a copy when the adapter dtype differs from the compute dtype
    (compute dtype under autocast); None when it keeps the input itself (shared)."""
    copy = p.adapter_bytes != s.act_bytes
    saved = act_num(s, lift) if p.autocast or not copy else lift(p.adapter_bytes, "adapter_bytes")
    if p.dropout > 0:
        return saved + lift(s.dropout_mask_bytes, "mask_bytes") if mask else saved
    return saved if copy else None


def _input_grad(input_id: str, grad: BlockGrad) -> bool:
    """Whether the tensor an adapter reads carries a gradient in a block where gradients flow as ``grad``."""
    if input_id in ("attention_input", "q_latent", "kv_latent"):
        return grad.input
    if input_id == "attention_output":
        return grad.attention
    return grad.post if input_id in ("mlp_input", "expert_input") else grad.mlp


def _dora_bytes(p: PeftSetup, lift: Lift[Num], rows: Num, n_in: Num, n_out: Num, act: Num, inter: Num, *,
                input_grad: bool) -> Num:
    """DoRA beyond LoRA: the base output (compute dtype; with dropout PEFT recomputes it from the dropped input in
    the adapter dtype, keeping that weight copy, out×in per layer, where the input carries a gradient) and the LoRA
    output, out each; three out-sized fp32 vectors per layer (the norm, the scale and the scale less one)."""
    per_layer = 3 * n_out * FP32_BYTES
    if p.dropout > 0:
        adapter = lift(p.adapter_bytes, "adapter_bytes")
        weight = n_out * n_in * adapter if input_grad else 0.0
        return rows * n_out * (adapter + inter) + per_layer + weight
    return rows * n_out * (act + inter) + per_layer


def base_kept_inputs(layer: Layer, model_type: str, s: ActivationSetup) -> frozenset[str]:
    """Adapter inputs the frozen base keeps anyway in the compute dtype: all of them where frozen linears save
    their input; else the attention output a fused kernel keeps (when o_proj reads it without a copy), and the
    down projection's input where the activation keeps its own output (ReLU)."""
    if s.linears_save_input:
        return frozenset({"attention_input", "attention_output", "mlp_input", "mlp_hidden", "shared_experts_hidden",
                          "q_latent", "kv_latent", "expert_input", "expert_hidden"})
    kept = set()
    if layer.attention is not None:
        path = hf_attention_path(layer.attention, model_type, s.attention, seq=s.seq, micro_batch=s.micro_batch,
                                 extra_keys=s.peft.prefix_tokens if s.peft else 0)
        if path.kernel is Kernel.FUSED and not path.output_copy:
            kept.add("attention_output")
    mlp = layer.ffn
    if isinstance(mlp, Mlp) and not mlp.gated and not HF_ACTIVATION_TENSORS.get(mlp.activation, (True, 0))[0]:
        kept.add("mlp_hidden")
    return frozenset(kept)


# --- temporaries and the summary -----------------------------------------------------------------------------


def peft_transient_bytes(spec: ModelSpec, s: ActivationSetup) -> float:
    """The largest weight-shaped temporary one linear makes (``ActivationBreakdown.transient_bytes["weights"]``):
    QLoRA's dequantized bf16 weight (``F.dequantize_4bit(B).to(A.dtype)``, forward and backward), DoRA's column-norm
    tensors; 0 otherwise."""
    p = s.peft
    if p is None:
        return 0.0
    if p.quantized_base:
        return max(lin.out_features * lin.in_features for lin in model_linears(spec)
                   if lin.name != "router") * s.act_bytes / s.tp
    if p.kind is not AdapterKind.DORA:
        return 0.0
    sizes = [lin.in_features * (lin.in_features + 4 * lin.out_features)
             for layer, _ in spec.layer_groups() for lin in _adapted(layer, spec.hidden_size, spec.model_type, p)]
    return max(sizes, default=0) * p.adapter_bytes / s.tp


@dataclass(frozen=True, slots=True, kw_only=True)
class PeftActivations:
    """What a method's adapters keep and make, for reporting: ``adapter_bytes_per_token`` summed over the blocks
    (one GPU, no tp or cp), ``transient_bytes`` (``peft_transient_bytes``), ``extra_tokens`` added to every
    sequence (prompt tuning) or to every layer's keys and values (prefix tuning, P-tuning v2)."""

    adapter_bytes_per_token: float
    transient_bytes: float = 0.0
    extra_tokens: int = 0
    notes: tuple[str, ...] = ()


def peft_activations(spec: ModelSpec, job: TrainingJob) -> PeftActivations:
    """What ``job.method``'s adapters add to its frozen model's activations (the frozen model itself is in
    ``core/activations.py``), at the job's precision."""
    peft = peft_setup(spec, job, lora_dropout=job.peft.lora_dropout, bnb_saves_input=job.peft.bnb_saves_input)
    s = ActivationSetup(seq=job.seq, micro_batch=1, flavour=Flavour.HUGGINGFACE, peft=peft,
                        act_bytes=activation_dtype_bytes(job.precision), attention=job.attention)
    total = 0.0
    for layer, count in spec.layer_groups():
        kept = base_kept_inputs(layer, spec.model_type, s)
        total += count * sum(adapter_bytes(layer, spec.hidden_size, spec.model_type, s, plain, kept=kept).values())
    extra = job.peft.num_virtual_tokens if job.method in _VIRTUAL_TOKENS else 0
    return PeftActivations(adapter_bytes_per_token=total / job.seq, transient_bytes=peft_transient_bytes(
        spec, s), extra_tokens=extra, notes=_notes(job, peft))


def _notes(job: TrainingJob, peft: PeftSetup | None) -> tuple[str, ...]:
    if peft is None:
        return ()
    notes: list[str] = ["frozen linears keep no input for backward; nothing before the first adapter is saved"]
    if peft.kind in _LORA_KINDS and peft.adapter_bytes != activation_dtype_bytes(job.precision):
        notes.append("PEFT keeps each adapter's own copy of its input in the adapter dtype (fp32), not shared "
                     "between q, k and v" if not peft.autocast else
                     "under autocast each adapter keeps its own compute-dtype copy of its input")
    if job.method is Method.QLORA:
        notes.append("bitsandbytes >= 0.43.2 keeps no input in its 4-bit matmul (earlier versions kept it); the "
                     "dequantized bf16 weight is a transient of each matmul, forward and backward")
    if job.method in (Method.PREFIX_TUNING, Method.P_TUNING_V2):
        notes.append(f"keys and values grow by {job.peft.num_virtual_tokens} in every layer; SDPA gets an explicit "
                     "mask")
    if job.method is Method.PROMPT_TUNING:
        notes.append(f"every layer and the loss run on seq + {job.peft.num_virtual_tokens} tokens")
    if job.method is Method.ADAPTER:
        notes.append("Houlsby adapters are not in HF PEFT: counted as their input and bottleneck, in the compute dtype")
    return tuple(notes)


__all__ = ["ALL_GRAD", "AUTOCAST", "BNB_4BIT_SAVES_INPUT", "METHOD_ADAPTER", "MODULE_CAST", "BlockGrad",
           "PeftActivations", "adapter_bytes", "base_kept_inputs", "block_grad",
           "extra_sequence_tokens", "frozen_start", "peft_activations", "peft_setup", "peft_transient_bytes"]
