"""What suanli predicts for the run ``suanli measure`` makes: the same core functions ``train`` and ``infer`` call,
for the same model, batch, sequence, precision, optimizer and method, on the accelerator that stands for the
local device. No torch here: this is the analytical side of the comparison.

What is predicted is what the measurement can see:

- **peak memory** is the bytes live in tensors at the peak (``torch.cuda.max_memory_allocated`` on CUDA, the
  tracked allocation replay plus the persistent tensors on the CPU). Neither counter sees the CUDA context nor
  the caching allocator's spare blocks, so the prediction leaves ``cuda_context_bytes`` and the allocator
  fragmentation out of it (on the CPU there is neither: no CUDA context, and glibc's heap is not a caching
  allocator the replay would see). On CUDA the predicted *reserved* bytes (peak × (1 + fragmentation)) are
  reported beside it, against ``max_memory_reserved``.
- **time**: training's step time (``core.training_time``), serving's time to first token and time per output
  token (``infer_report`` with the ``hf`` engine: transformers ``generate``, no paging, whole-batch prefill).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from suanli.core.memory import training_memory
from suanli.core.training_time import training_time
from suanli.infer_report import inference_report
from suanli.spec.assumptions import MemoryAssumptions, PerformanceAssumptions
from suanli.spec.engines import get_engine
from suanli.spec.hardware import Accelerator
from suanli.spec.layout import AttentionImpl, Layout
from suanli.spec.model import ModelSpec
from suanli.spec.precision import parse_number_format
from suanli.spec.training import Framework, Method, Optimizer, PrecisionMode, TrainingJob


class Device(Enum):
    CPU = "cpu"
    CUDA = "cuda"


class Mode(Enum):
    TRAIN = "train"
    INFER = "infer"


class DType(Enum):
    """The dtype the model runs in; training in it is pure (weights, gradients and AdamW states in it, no master
    copy), as ``torch.optim.AdamW`` over a model built in that dtype keeps its states like the parameter."""

    FP32 = "fp32"
    BF16 = "bf16"

    @property
    def torch_name(self) -> str:
        return {"fp32": "float32", "bf16": "bfloat16"}[self.value]

    @property
    def precision_mode(self) -> PrecisionMode:
        return PrecisionMode.FP32 if self is DType.FP32 else PrecisionMode.PURE_BF16


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasureJob:
    """One measured run: ``batch`` sequences of ``seq`` tokens (the prompt, in inference, followed by
    ``output_tokens`` generated ones), ``steps`` timed repetitions after ``warmup`` untimed ones."""

    device: Device
    mode: Mode
    seq: int
    batch: int
    output_tokens: int
    method: Method
    dtype: DType
    steps: int
    warmup: int
    lora_rank: int = 16

    def training_job(self) -> TrainingJob:
        """The job as ``suanli train`` describes it: the transformers modelling code (HF flavour), SDPA attention
        (transformers' default), torch AdamW, pure ``dtype`` model states."""
        from suanli.spec.training import PeftConfig

        return TrainingJob(seq=self.seq, method=self.method, optimizer=Optimizer.ADAMW,
                           precision=self.dtype.precision_mode, attention=AttentionImpl.SDPA,
                           framework=Framework.HF, peft=PeftConfig(rank=self.lora_rank))


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    """Predicted peak memory (what tensors hold at the peak), its parts, and the time of one step (training) or
    the time to first token and per output token (inference)."""

    peak_memory_bytes: float
    reserved_bytes: float | None
    components: dict[str, float]
    step_s: float | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None


def memory_assumptions() -> MemoryAssumptions:
    """What the measured counters see: no CUDA context (outside both counters), no fragmentation (outside the
    allocated bytes; reported separately as reserved on CUDA)."""
    return MemoryAssumptions(cuda_context_bytes=0.0, allocator_fragmentation=0.0)


def predict(spec: ModelSpec, job: MeasureJob, accelerator: Accelerator,
            performance: PerformanceAssumptions | None = None) -> Prediction:
    """The prediction for ``job`` on ``accelerator`` (the local device's entry, calibrated or not)."""
    if job.mode is Mode.TRAIN:
        return _predict_training(spec, job, accelerator, performance)
    return _predict_inference(spec, job, accelerator, performance)


def _predict_training(spec: ModelSpec, job: MeasureJob, accelerator: Accelerator,
                      performance: PerformanceAssumptions | None) -> Prediction:
    layout = Layout(micro_batch=job.batch)
    training = job.training_job()
    memory = training_memory(spec, training, layout, capacity_bytes=float(accelerator.memory_bytes),
                             assumptions=memory_assumptions())
    time = training_time(spec, training, layout, accelerator, assumptions=performance)
    components = {"weights_bytes": memory.weights_bytes, "gradients_bytes": memory.gradients_bytes,
                  "master_weights_bytes": memory.master_weights_bytes, "optimizer_bytes": memory.optimizer_bytes,
                  "activations_bytes": memory.activations_bytes, "workspace_bytes": memory.workspace_bytes}
    reserved = memory.total_bytes * (1 + MemoryAssumptions().allocator_fragmentation)
    return Prediction(peak_memory_bytes=memory.total_bytes, components=components, step_s=time.step_s,
                      reserved_bytes=reserved if job.device is Device.CUDA else None)


def _predict_inference(spec: ModelSpec, job: MeasureJob, accelerator: Accelerator,
                       performance: PerformanceAssumptions | None) -> Prediction:
    fmt = parse_number_format(job.dtype.value)
    report = inference_report(spec, accelerator, engine=get_engine("hf"), tp=1, ep=1, batch=job.batch,
                              prompt_tokens=job.seq, output_tokens=job.output_tokens, weights_format=fmt,
                              kv_format=fmt, assumptions=performance)
    memory, latency = report.values["memory"]["per_gpu"], report.values["latency"]
    components = {"weights_bytes": float(memory["weights_bytes"]), "kv_cache_bytes": float(memory["kv_cache_bytes"]),
                  "activations_bytes": float(memory["activations_bytes"])}
    peak = sum(components.values())
    reserved = peak * (1 + MemoryAssumptions().allocator_fragmentation)
    return Prediction(peak_memory_bytes=peak, components=components, ttft_s=float(latency["ttft_s"]),
                      tpot_s=float(latency["tpot_s"]), reserved_bytes=reserved if job.device is Device.CUDA else None)


def signed_error(predicted: float | None, measured: float | None) -> float | None:
    """predicted / measured − 1: positive when suanli predicts more than was measured."""
    if predicted is None or measured is None or measured <= 0:
        return None
    return predicted / measured - 1


__all__ = ["DType", "Device", "MeasureJob", "Mode", "Prediction", "memory_assumptions", "predict", "signed_error"]
