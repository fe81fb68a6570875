"""What can run where: number formats an accelerator computes in, engines and methods that exist for it, and
contexts a model can take. Each rule returns a ``Violation`` (or None) naming the numbers and the fix;
``enforce`` turns violations into one error, or — when the user insists with ``--force`` — into notes that say
which check was forced, so the report never hides it.

The data behind the rules lives in the catalogs: ``accelerators.toml`` (dense peaks per format, with
``unverified_formats`` for formats supported without a published peak, ``inference_only``), ``engines.toml``
(``runs_on`` platforms per engine).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from suanli.errors import SpecError
from suanli.i18n import Joined, Text
from suanli.spec.engines import EnginePreset, load_engines
from suanli.spec.hardware import Accelerator, load_accelerators
from suanli.spec.model import ModelSpec
from suanli.spec.precision import NumberFormat
from suanli.spec.training import Method, PrecisionMode

QLORA_VENDORS = frozenset({"nvidia", "amd"})  # bitsandbytes' 4-bit kernels: CUDA, and ROCm since 0.44


@dataclass(frozen=True, slots=True)
class Violation:
    """One failed check: a short name (what ``--force`` overrides) and a message with the numbers and the fix."""

    check: str
    message: Text


def enforce(violations: Iterable[Violation | None], *, force: bool) -> tuple[str, ...]:
    """Raise SpecError for the first violation unless ``force``; with ``force``, one note per violation."""
    found = [v for v in violations if v is not None]
    if found and not force:
        raise SpecError(f"{found[0].message}; or add --force to estimate anyway", key="error.support.violation",
                        fields={"message": found[0].message})
    return tuple(Text("note.forced", check=v.check, message=v.message) for v in found)


# ---- number formats --------------------------------------------------------------------------------------


def training_format(precision: PrecisionMode) -> str | None:
    """The tensor format a precision mode computes its GEMMs in; None for fp32 (every part computes fp32)."""
    if precision is PrecisionMode.FP8:
        return "fp8"
    if precision in (PrecisionMode.AMP_FP16, PrecisionMode.MIXED_FP16):
        return "fp16"
    return None if precision is PrecisionMode.FP32 else "bf16"


def _others(accelerator: Accelerator, fmt: str) -> str:
    """Catalog parts that do compute in ``fmt``, for the fix."""
    names = [a.key for a in load_accelerators() if a.kind == accelerator.kind and a.supports(fmt)]
    return ", ".join(names[:4]) if names else Text("error.support.none_in_catalog")


def training_format_violation(precision: PrecisionMode, accelerator: Accelerator) -> Violation | None:
    """bf16 on Volta/Turing, fp8 before Ada/Hopper, fp16 on TPUs: the part has no tensor path for it."""
    fmt = training_format(precision)
    if fmt is None or accelerator.supports(fmt):
        return None
    usable = [f for f in ("bf16", "fp16") if f != fmt and accelerator.supports(f)]
    return Violation("number-format", Text("error.support.training_format", gpu=accelerator.name, fmt=fmt,
                                           formats=", ".join(accelerator.formats),
                                           precision=usable[0] if usable else "fp32",
                                           others=_others(accelerator, fmt)))


def weights_format_violation(fmt: NumberFormat, accelerator: Accelerator) -> Violation | None:
    """Serving weights in a format the part cannot use. Plain 16-bit weights need that format; fp8 and fp4
    weights run natively where the part has the format, else weight-only (dequantized to bf16 inside the GEMM,
    vLLM's Marlin kernels on Ampere-class GPUs), which needs bf16."""
    if fmt.key in ("bf16", "fp16") and not accelerator.supports(fmt.key):
        other = "fp16" if fmt.key == "bf16" else "bf16"
        return Violation("number-format", Text("error.support.weights_16bit", gpu=accelerator.name, fmt=fmt.key,
                                               formats=", ".join(accelerator.formats), other=other))
    low = fmt.compute_format in ("fp8", "fp4")
    if low and not accelerator.supports(fmt.compute_format) and not accelerator.supports("bf16"):
        low_fmt = fmt.compute_format
        return Violation("number-format", Text("error.support.weights_low", gpu=accelerator.name, low=low_fmt,
                                               fmt=fmt.key, others=_others(accelerator, low_fmt)))
    return None


# ---- engines and methods ---------------------------------------------------------------------------------


def engine_violation(engine: EnginePreset, accelerator: Accelerator) -> Violation | None:
    """The engine has no backend for the accelerator's platform (engines.toml ``runs_on``)."""
    if not engine.runs_on or accelerator.platform in engine.runs_on:
        return None
    engines = load_engines()
    versions = {e.key for e in engines for base in engines if e.key.startswith(f"{base.key}-")}  # vllm-0.10
    others = [e.key for e in engines if accelerator.platform in e.runs_on and e.key not in versions]
    fix = (Text("error.support.use_engine", engines=Joined("join.or", others)) if others else
           Text("error.support.no_engine"))
    return Violation("engine-hardware", Text("error.support.engine", engine=engine.name, gpu=accelerator.name,
                                             platform=accelerator.platform, runs_on=", ".join(engine.runs_on),
                                             fix=fix))


def runs_method(accelerator: Accelerator, method: Method) -> bool:
    """Whether the method's kernels exist for the accelerator: QLoRA needs bitsandbytes, i.e. a CUDA or ROCm
    GPU (bitsandbytes docs, "Installation": CUDA, and ROCm support from 0.44); nothing trains on an
    inference-only part; other methods run wherever PyTorch trains."""
    if accelerator.inference_only:
        return False
    return method is not Method.QLORA or (accelerator.kind == "gpu"
                                          and accelerator.vendor.lower() in QLORA_VENDORS)


def method_violation(method: Method, accelerator: Accelerator) -> Violation | None:
    """``runs_method`` as a violation with the fix."""
    if runs_method(accelerator, method):
        return None
    if accelerator.inference_only:
        return Violation("training-hardware", Text("error.support.inference_only", gpu=accelerator.name))
    return Violation("method-hardware", Text("error.support.qlora", gpu=accelerator.name))


# ---- context length --------------------------------------------------------------------------------------


def max_context_tokens(spec: ModelSpec) -> int:
    """The longest sequence the model's positions cover: ``max_position_embeddings``, or the RoPE-scaled
    length (factor × original_max_position_embeddings, YaRN and friends) when the config extends it further.
    Sliding-window layers do not lift the limit: the global layers still index positions."""
    return max(spec.max_position_embeddings, spec.rope_scaled_positions or 0)


def context_violation(spec: ModelSpec, tokens: int, what: str) -> Violation | None:
    """``tokens`` (prompt + output, or the training sequence) beyond the positions the model was built for."""
    limit = max_context_tokens(spec)
    if tokens <= limit:
        return None
    return Violation("context-length", Text("error.support.context", what=what, tokens=tokens, model=spec.name,
                                            limit=limit, positions=spec.max_position_embeddings,
                                            scaling=_scaling(spec)))


def model_len_violation(spec: ModelSpec, engine: EnginePreset, tokens: int, what: str) -> Violation | None:
    """``--max-model-len`` beyond the model's positions (vLLM refuses it unless VLLM_ALLOW_LONG_MAX_MODEL_LEN is
    set), or a request longer than ``--max-model-len`` (the server rejects it)."""
    limit = engine.max_model_len
    if limit is None:
        return None
    if limit > spec.max_position_embeddings:
        return Violation("max-model-len", Text("error.support.max_model_len_context", limit=limit, model=spec.name,
                                               positions=spec.max_position_embeddings))
    if tokens > limit:
        return Violation("max-model-len", Text("error.support.max_model_len_request", what=what, tokens=tokens,
                                               limit=limit))
    return None


def startup_note(spec: ModelSpec, engine: EnginePreset, kv_capacity_tokens: int) -> Text | None:
    """vLLM refuses to start when its KV pool cannot hold one request of max_model_len tokens (V1
    vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory, V0 worker.raise_if_cache_size_invalid): with the
    default max_model_len, the model's whole context, a small GPU fails where a shorter --max-model-len runs. A model
    without attention (Mamba) keeps one fixed-size state per request, whatever its length: no note."""
    model_len = engine.model_len(spec.max_position_embeddings)
    short = 0 < kv_capacity_tokens < model_len
    if not (engine.checks_pool_at_start and short and spec.first_attention is not None):
        return None
    return Text("note.serving.vllm_would_not_start", engine=engine.name, capacity=kv_capacity_tokens,
                model_len=model_len)


def _scaling(spec: ModelSpec) -> str:
    scaled = spec.rope_scaled_positions or 0
    return Text("error.support.rope_scaling", scaled=scaled) if scaled > spec.max_position_embeddings else ""
