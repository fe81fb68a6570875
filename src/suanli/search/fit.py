"""``suanli fit``: for every catalog accelerator, the fewest GPUs that hold a job, with the headroom.

GPU counts tried: 1, 2, 4, 8, then whole 8-GPU nodes up to ``MAX_GPUS``. For each count the layout that the
frameworks users reach for first would run is evaluated:

- training modes (full, LoRA, QLoRA): one GPU without sharding, else ZeRO-3 / FSDP full-shard over all
  GPUs; activation recomputation off, then full (as a person short of memory would);
- inference: tensor parallelism over all the GPUs (vLLM's way to spread a model; past one node real
  deployments add pipeline stages, which hold about the same weights per GPU), on the chosen engine with
  its default memory budget: the job fits when this batch's KV cache fits the engine's KV pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from suanli.core.inference_memory import inference_memory
from suanli.core.memory import training_memory
from suanli.errors import SuanliError
from suanli.spec.engines import get_engine
from suanli.spec.hardware import Accelerator, load_accelerators
from suanli.spec.layout import Layout, Recompute
from suanli.spec.model import ModelSpec
from suanli.spec.precision import parse_number_format
from suanli.spec.training import Method, Optimizer, PeftConfig, TrainingJob

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
class FitRow:
    """The answer for one accelerator: ``min_gpus`` is None when nothing up to MAX_GPUS holds the job."""

    gpu: str
    name: str
    capacity_bytes: float
    min_gpus: int | None
    per_gpu_total_bytes: float | None
    headroom_bytes: float | None
    layout: str | None


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


def fit_table(evaluate: Evaluate, accelerators: tuple[Accelerator, ...] | None = None) -> list[FitRow]:
    """One row per accelerator: the first GPU count whose evaluation fits."""
    rows = []
    for accelerator in accelerators if accelerators is not None else load_accelerators():
        found = next(((n, t) for n in gpu_counts() if (t := evaluate(accelerator, n)) and t.headroom_bytes >= 0),
                     None)
        rows.append(FitRow(gpu=accelerator.key, name=accelerator.name,
                           capacity_bytes=usable_memory_bytes(accelerator),
                           min_gpus=found[0] if found else None,
                           per_gpu_total_bytes=found[1].per_gpu_total_bytes if found else None,
                           headroom_bytes=found[1].headroom_bytes if found else None,
                           layout=found[1].layout if found else None))
    return rows


QLORA_VENDORS = frozenset({"nvidia", "amd"})  # bitsandbytes' 4-bit kernels: CUDA, and ROCm since 0.44


def runs_method(accelerator: Accelerator, method: Method) -> bool:
    """Whether the method's kernels exist for the accelerator: QLoRA needs bitsandbytes, i.e. a CUDA or ROCm
    GPU (bitsandbytes docs, "Installation": CUDA, and ROCm support from 0.44); other methods run wherever
    PyTorch trains."""
    return method is not Method.QLORA or (accelerator.kind == "gpu"
                                          and accelerator.vendor.lower() in QLORA_VENDORS)


def training_evaluator(spec: ModelSpec, method: Method, *, seq: int, micro_batch: int) -> Evaluate:
    """No sharding on one GPU, else ZeRO-3 over all of them; recompute off, then full."""
    optimizer = Optimizer.PAGED_ADAMW_8BIT if method is Method.QLORA else Optimizer.ADAMW
    job = TrainingJob(seq=seq, method=method, optimizer=optimizer, peft=PeftConfig())

    def evaluate(accelerator: Accelerator, gpus: int) -> FitTry | None:
        if not runs_method(accelerator, method):
            return None
        attempt = None
        for recompute in (Recompute.NONE, Recompute.FULL):
            layout = Layout(dp=gpus, zero=3 if gpus > 1 else 0, micro_batch=micro_batch, recompute=recompute)
            try:
                memory = training_memory(spec, job, layout, capacity_bytes=usable_memory_bytes(accelerator))
            except SuanliError:
                return None
            attempt = FitTry(per_gpu_total_bytes=memory.total_bytes, headroom_bytes=memory.headroom_bytes,
                             layout=f"{'ZeRO-3, ' if gpus > 1 else ''}recompute {recompute.value}")
            if memory.fits:
                break
        return attempt

    return evaluate


def inference_evaluator(spec: ModelSpec, *, engine: str, quant: str | None, kv_dtype: str | None, context: int,
                        batch: int) -> Evaluate:
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
                      layout=f"tp {gpus}, {preset.key}, weights {memory.weights.format_key}, kv {memory.kv_format}")

    return evaluate
