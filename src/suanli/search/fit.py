"""``suanli fit``: for every catalog accelerator, the fewest GPUs that hold a job, with the headroom.

GPU counts tried: 1, 2, 4, 8, then whole 8-GPU nodes up to ``MAX_GPUS``. For each count the layout that the
frameworks users reach for first would run is evaluated:

- training modes (full, LoRA, QLoRA): one GPU without sharding, else ZeRO-3 / FSDP full-shard over all
  GPUs; activation recomputation off, then full (as a person short of memory would);
- inference: tensor parallelism over all the GPUs (vLLM's way to spread a model; past one node real
  deployments add pipeline stages, which hold about the same weights per GPU), on the chosen engine with
  its default memory budget: the job fits when this batch's KV cache fits the engine's KV pool.

An accelerator the engine or method does not run on gets no count, with the reason as the row's note
(``spec/support.py``). A part whose only memory is on-chip SRAM (Groq's LPU, 230 MB per chip, no HBM) holds a
model by spreading its weights over many chips: its count is weights / SRAM per chip, rounded up, a lower bound
(the KV cache and activations need more), whatever the engine, since such parts run their vendor's compiler.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from suanli.core.inference_memory import inference_memory, weight_bytes_per_gpu
from suanli.core.memory import device_memory_assumptions, training_memory
from suanli.errors import SuanliError
from suanli.i18n import Text
from suanli.spec.engines import get_engine
from suanli.spec.hardware import Accelerator, load_accelerators
from suanli.spec.layout import Layout, Recompute
from suanli.spec.model import ModelSpec
from suanli.spec.precision import parse_number_format
from suanli.spec.support import engine_violation, method_violation, runs_method, weights_format_violation
from suanli.spec.training import Method, Optimizer, PeftConfig, TrainingJob
from suanli.units import GB

__all__ = ["FIT_RECOMPUTES", "FitRow", "FitTry", "Fitter", "fit_layout", "fit_table", "gpu_counts",
           "inference_evaluator", "runs_method", "training_evaluator", "usable_memory_bytes"]

MAX_GPUS = 1024
GPUS_PER_NODE = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class FitTry:
    """One evaluated GPU count: per-GPU total, headroom (negative: does not fit) and the layout used."""

    per_gpu_total_bytes: float
    headroom_bytes: float
    layout: str


Evaluate = Callable[[Accelerator, int], FitTry | None]  # None: the layout is impossible at that count


@dataclass(frozen=True, slots=True, kw_only=True)
class Fitter:
    """A job to fit: ``evaluate`` one GPU count, ``refusal`` says why a part cannot run it at all (None: it
    can), ``weights_bytes`` is the whole model's weights in the served format (inference only) and
    ``format_refusal`` why an SRAM-only part cannot hold them in that format."""

    evaluate: Evaluate
    refusal: Callable[[Accelerator], str | None]
    weights_bytes: float | None = None
    format_refusal: Callable[[Accelerator], str | None] = lambda accelerator: None


@dataclass(frozen=True, slots=True, kw_only=True)
class FitRow:
    """The answer for one accelerator: ``min_gpus`` is None when nothing up to MAX_GPUS holds the job."""

    gpu: str
    name: str
    capacity_bytes: float
    min_gpus: int | None
    per_gpu_total_bytes: float | None
    headroom_bytes: float | None
    layout: str | None
    note: str | None = None


def usable_memory_bytes(accelerator: Accelerator) -> float:
    """What one accelerator offers: the total the driver reports where we have seen it (nvidia-smi on a
    real machine), else the physical capacity."""
    return float(accelerator.driver_memory_bytes or accelerator.memory_bytes)


def gpu_counts() -> Iterator[int]:
    yield from (1, 2, 4)
    n = GPUS_PER_NODE
    while n <= MAX_GPUS:
        yield n
        n *= 2


def fit_table(fitter: Fitter, accelerators: tuple[Accelerator, ...] | None = None) -> list[FitRow]:
    """One row per accelerator: the first GPU count whose evaluation fits, the on-chip count for SRAM-only
    parts, or no count with the reason the part cannot run the job."""
    rows = []
    for accelerator in accelerators if accelerators is not None else load_accelerators():
        on_chip = accelerator.on_chip_memory_only and fitter.weights_bytes is not None
        if on_chip and fitter.weights_bytes is not None and fitter.format_refusal(accelerator) is None:
            rows.append(on_chip_row(accelerator, fitter.weights_bytes))
            continue
        if (reason := (fitter.format_refusal if on_chip else fitter.refusal)(accelerator)) is not None:
            rows.append(FitRow(gpu=accelerator.key, name=accelerator.name, capacity_bytes=usable_memory_bytes(
                accelerator), min_gpus=None, per_gpu_total_bytes=None, headroom_bytes=None, layout=None, note=reason))
            continue
        found = next(((n, t) for n in gpu_counts()
                      if (t := fitter.evaluate(accelerator, n)) and t.headroom_bytes >= 0), None)
        rows.append(FitRow(gpu=accelerator.key, name=accelerator.name,
                           capacity_bytes=usable_memory_bytes(accelerator),
                           min_gpus=found[0] if found else None,
                           per_gpu_total_bytes=found[1].per_gpu_total_bytes if found else None,
                           headroom_bytes=found[1].headroom_bytes if found else None,
                           layout=found[1].layout if found else None))
    return rows


def on_chip_row(accelerator: Accelerator, weights_bytes: float) -> FitRow:
    """chips = ceil(weights / SRAM per chip): the fewest chips whose SRAM holds the weights alone."""
    sram = usable_memory_bytes(accelerator)
    chips = max(1, math.ceil(weights_bytes / sram))
    per_chip = weights_bytes / chips
    note = Text("note.fit.on_chip", weights_gb=weights_bytes / GB, sram_gb=sram / GB, chips=chips)
    return FitRow(gpu=accelerator.key, name=accelerator.name, capacity_bytes=sram, min_gpus=chips,
                  per_gpu_total_bytes=per_chip, headroom_bytes=sram - per_chip,
                  layout=Text("value.fit.on_chip_layout", chips=chips), note=note)


def fit_layout(gpus: int, *, micro_batch: int, recompute: Recompute) -> Layout:
    """The layout ``fit`` tries for training: no sharding on one GPU, else ZeRO-3 / FSDP over all of them."""
    return Layout(dp=gpus, zero=3 if gpus > 1 else 0, micro_batch=micro_batch, recompute=recompute)


FIT_RECOMPUTES = (Recompute.NONE, Recompute.FULL)  # tried in this order: a person short of memory turns it on


def training_evaluator(spec: ModelSpec, method: Method, *, seq: int, micro_batch: int,
                       job: TrainingJob | None = None) -> Fitter:
    """No sharding on one GPU, else ZeRO-3 over all of them; recompute off, then full. ``job`` (default: the
    method's usual optimizer at ``seq`` tokens) carries the caller's precision, framework and PEFT settings."""
    optimizer = Optimizer.PAGED_ADAMW_8BIT if method is Method.QLORA else Optimizer.ADAMW
    job = job or TrainingJob(seq=seq, method=method, optimizer=optimizer, peft=PeftConfig())

    def evaluate(accelerator: Accelerator, gpus: int) -> FitTry | None:
        if not runs_method(accelerator, method):
            return None
        attempt = None
        for recompute in FIT_RECOMPUTES:
            layout = fit_layout(gpus, micro_batch=micro_batch, recompute=recompute)
            try:
                memory = training_memory(spec, job, layout, capacity_bytes=usable_memory_bytes(accelerator),
                                         assumptions=device_memory_assumptions(accelerator))
            except SuanliError:
                return None
            attempt = FitTry(per_gpu_total_bytes=memory.total_bytes, headroom_bytes=memory.headroom_bytes,
                             layout=Text("value.fit.zero3_layout" if gpus > 1 else "value.fit.one_gpu_layout",
                                         recompute=Text(f"term.recompute.{recompute.value}")))
            if memory.fits:
                break
        return attempt

    def refusal(accelerator: Accelerator) -> str | None:
        violation = method_violation(method, accelerator)
        return violation.message if violation else None

    return Fitter(evaluate=evaluate, refusal=refusal)


def inference_evaluator(spec: ModelSpec, *, engine: str, quant: str | None, kv_dtype: str | None, context: int,
                        batch: int) -> Fitter:
    """Serve ``batch`` sequences of ``context`` tokens with tp = gpus on the engine's default budget."""
    preset = get_engine(engine)
    weights = parse_number_format(quant) if quant else None
    kv = parse_number_format(kv_dtype) if kv_dtype else None

    def evaluate(accelerator: Accelerator, gpus: int) -> FitTry | None:
        try:
            memory = inference_memory(spec, accelerator, batch=batch, prompt_tokens=context, engine=preset,
                                      weights_format=weights, kv_format=kv, tp=gpus)
        except SuanliError:
            return None
        return FitTry(per_gpu_total_bytes=memory.total_bytes, headroom_bytes=memory.headroom_bytes,
                      layout=Text("value.fit.serving_layout", tp=gpus, engine=preset.key,
                                  weights=memory.weights.format_key, kv=memory.kv_format))

    def format_refusal(accelerator: Accelerator) -> str | None:
        served = weights or (spec.quantization.weights if spec.quantization else None)  # --quant or checkpoint's
        violation = weights_format_violation(served, accelerator) if served else None
        return violation.message if violation else None

    def refusal(accelerator: Accelerator) -> str | None:
        violation = engine_violation(preset, accelerator)
        return violation.message if violation else format_refusal(accelerator)

    return Fitter(evaluate=evaluate, refusal=refusal, weights_bytes=weight_bytes_per_gpu(spec, weights).total_bytes,
                  format_refusal=format_refusal)
