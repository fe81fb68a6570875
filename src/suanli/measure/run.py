"""A real training step or generation of a transformers model on the local device, timed and its memory counted:
the measured half of ``suanli measure``. torch and transformers are imported lazily, inside the functions.

The model is built from its bundled config.json with random weights (``AutoModelForCausalLM.from_config``; nothing
is downloaded), in the dtype asked, with SDPA attention (transformers' default).

Training: ``warmup`` untimed steps (the first creates AdamW's states), then ``steps`` timed ones, each forward (labels
= inputs, so transformers' ``ForCausalLMLoss`` runs), backward, ``AdamW.step`` and ``zero_grad(set_to_none=True)``.
The step time is the median of the timed steps (``time.perf_counter``, after ``torch.cuda.synchronize`` on CUDA).

Inference: greedy decoding by hand with the KV cache (``DynamicCache``): one forward over the whole prompt batch
(its time is the time to first token, the argmax included), then ``output_tokens − 1`` one-token forwards (their
mean is the time per output token). The median over ``steps`` generations, after ``warmup`` untimed ones.

Peak memory, and which counter each number comes from:

- CUDA: ``torch.cuda.max_memory_allocated`` over one more step, after ``reset_peak_memory_stats`` (the bytes live
  in tensors at the peak, parameters and optimizer states included: they were allocated before and are still
  live); ``max_memory_reserved`` beside it (what the caching allocator held from the driver).
- CPU: the tracked allocation replay of ``suanli.measure.activations`` (a ``TorchDispatchMode`` that records every
  storage an op creates until it is freed) over one more step, plus the bytes of the tensors that persist
  across steps (parameters, buffers, AdamW's ``exp_avg``/``exp_avg_sq``; each storage once). The process's RSS
  high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``) less its RSS before the model was built is a
  second opinion: it also holds glibc's retained heap, torch's thread pools and Python objects.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suanli.errors import SpecError, Unavailable
from suanli.i18n import Text
from suanli.measure.activations import _make_tracker, build_causal_lm
from suanli.measure.predict import Device, MeasureJob, Mode
from suanli.spec.training import Method

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    """What one measured run gave: peak memory (and the counter it came from), the persistent part of it, the RSS
    second opinion (CPU) or the allocator's reserved bytes (CUDA), and the times."""

    peak_memory_bytes: int
    peak_memory_source: str
    persistent_bytes: int
    rss_delta_bytes: int | None
    reserved_bytes: int | None
    step_s: float | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    samples_s: tuple[float, ...] = ()
    torch_version: str = ""
    threads: int = 0
    device_name: str = ""


def require_torch(device: Device) -> None:
    """Raise Unavailable unless torch and transformers import, and CUDA is there when asked for."""
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise Unavailable(f"suanli measure needs torch and transformers ({exc.name} is missing); "
                          "install them with: pip install 'suanli[measure]'", key="error.measure.needs_torch",
                          fields={"missing": exc.name}) from exc
    if device is Device.CUDA and not torch.cuda.is_available():
        raise Unavailable("--device cuda: torch sees no CUDA device here (torch.cuda.is_available() is False); "
                          "use --device cpu, or install a CUDA build of torch on a machine with an NVIDIA GPU",
                          key="error.measure.measure_no_cuda")


def available_memory_bytes(device: Device) -> int:
    """Memory a run can still take: MemAvailable from /proc/meminfo on the CPU, ``torch.cuda.mem_get_info``'s free
    bytes on CUDA."""
    if device is Device.CUDA:
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    return meminfo_available_bytes()


def meminfo_available_bytes(text: str | None = None) -> int:
    """``MemAvailable`` (kB in the file) in bytes; ``MemFree`` on old kernels without it."""
    try:
        text = _MEMINFO.read_text() if text is None else text
    except OSError as exc:
        raise Unavailable(f"cannot read {_MEMINFO} to check free memory ({exc}); run on Linux",
                          key="error.measure.meminfo_unreadable", fields={"path": _MEMINFO, "reason": exc}) from exc
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    raw = fields.get("MemAvailable") or fields.get("MemFree")
    if raw is None:
        raise Unavailable(f"{_MEMINFO} has neither MemAvailable nor MemFree", key="error.measure.meminfo_fields",
                          fields={"path": _MEMINFO})
    return int(raw.split()[0]) * 1024


def run_measurement(config: Mapping[str, Any], job: MeasureJob, *, seed: int = 0) -> Measurement:
    """Build the model, run the job on ``job.device`` and return what was measured."""
    import torch

    rss_before = _rss_bytes("VmRSS")
    model = build_causal_lm(config, attn_implementation="sdpa", dtype=job.dtype.torch_name, seed=seed)
    if job.method is Method.LORA:
        model = _with_lora(model, job.lora_rank)
    device = torch.device(job.device.value)
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, int(config["vocab_size"]), (job.batch, job.seq), generator=generator).to(device)
    if job.mode is Mode.TRAIN:
        result = _measure_training(model, ids, job, rss_before)
    else:
        result = _measure_inference(model, ids, job, rss_before)
    name = torch.cuda.get_device_name(device) if job.device is Device.CUDA else _cpu_name()
    return _with_run_info(result, torch.__version__, torch.get_num_threads(), name)


def _with_run_info(m: Measurement, version: str, threads: int, name: str) -> Measurement:
    return Measurement(peak_memory_bytes=m.peak_memory_bytes, peak_memory_source=m.peak_memory_source,
                       persistent_bytes=m.persistent_bytes, rss_delta_bytes=m.rss_delta_bytes,
                       reserved_bytes=m.reserved_bytes, step_s=m.step_s, ttft_s=m.ttft_s, tpot_s=m.tpot_s,
                       samples_s=m.samples_s, torch_version=version, threads=threads, device_name=name)


def _with_lora(model: torch.nn.Module, rank: int) -> torch.nn.Module:
    """LoRA on every linear of the blocks (q, k, v, o, gate, up, down), as ``--method lora`` predicts it, through
    Hugging Face PEFT."""
    try:
        import peft
    except ImportError as exc:
        raise Unavailable("--method lora needs Hugging Face PEFT: pip install peft",
                          key="error.measure.needs_peft") from exc
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets)
    wrapped: torch.nn.Module = peft.get_peft_model(model, config)
    return wrapped


def _measure_training(model: torch.nn.Module, ids: torch.Tensor, job: MeasureJob, rss_before: int) -> Measurement:
    import torch

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)

    def step() -> None:
        loss: torch.Tensor = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    samples = _timed(step, job)
    persistent = _storage_bytes([*model.parameters(), *model.buffers(), *_optimizer_tensors(optimizer)])
    peak, source, reserved, rss = _peak(step, job.device, model, optimizer, persistent, rss_before)
    return Measurement(peak_memory_bytes=peak, peak_memory_source=source, persistent_bytes=persistent,
                       rss_delta_bytes=rss, reserved_bytes=reserved, step_s=statistics.median(samples),
                       samples_s=tuple(samples))


def _measure_inference(model: torch.nn.Module, ids: torch.Tensor, job: MeasureJob, rss_before: int) -> Measurement:
    import torch

    model.eval()
    ttfts: list[float] = []
    tpots: list[float] = []

    def generate() -> None:
        with torch.inference_mode():
            ttft, tpot = _greedy(model, ids, job)
        ttfts.append(ttft)
        tpots.append(tpot)

    _timed(generate, job)
    timed_ttft, timed_tpot = ttfts[job.warmup:], tpots[job.warmup:]  # copies: the peak run below appends more
    persistent = _storage_bytes([*model.parameters(), *model.buffers()])
    peak, source, reserved, rss = _peak(generate, job.device, model, None, persistent, rss_before)
    return Measurement(peak_memory_bytes=peak, peak_memory_source=source, persistent_bytes=persistent,
                       rss_delta_bytes=rss, reserved_bytes=reserved, ttft_s=statistics.median(timed_ttft),
                       tpot_s=statistics.median(timed_tpot) if job.output_tokens > 1 else None,
                       samples_s=tuple(timed_ttft))


def _greedy(model: torch.nn.Module, ids: torch.Tensor, job: MeasureJob) -> tuple[float, float]:
    """One greedy generation with the KV cache: (prefill seconds, mean seconds per decode step)."""
    from transformers import DynamicCache

    sync = _synchronizer(job.device)
    cache = DynamicCache()
    start = time.perf_counter()
    out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    token = out.logits[:, -1].argmax(dim=-1, keepdim=True)
    sync()
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(job.output_tokens - 1):
        out = model(input_ids=token, past_key_values=out.past_key_values, use_cache=True)
        token = out.logits[:, -1].argmax(dim=-1, keepdim=True)
    sync()
    decode_steps = max(job.output_tokens - 1, 1)
    return prefill, (time.perf_counter() - start) / decode_steps


def _timed(run: Callable[[], None], job: MeasureJob) -> list[float]:
    """``warmup`` untimed calls, then the seconds of each of ``steps`` calls."""
    sync = _synchronizer(job.device)
    for _ in range(job.warmup):
        run()
    sync()
    samples = []
    for _ in range(job.steps):
        start = time.perf_counter()
        run()
        sync()
        samples.append(time.perf_counter() - start)
    return samples


def _synchronizer(device: Device) -> Callable[[], None]:
    if device is Device.CUDA:
        import torch

        return torch.cuda.synchronize
    return lambda: None


def _peak(run: Callable[[], None], device: Device, model: torch.nn.Module, optimizer: Any, persistent: int,
          rss_before: int) -> tuple[int, str, int | None, int | None]:
    """(peak bytes, the counter, reserved bytes on CUDA, RSS delta on the CPU) over one more call of ``run``."""
    if device is Device.CUDA:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        run()
        torch.cuda.synchronize()
        return (int(torch.cuda.max_memory_allocated()), "torch.cuda.max_memory_allocated",
                int(torch.cuda.max_memory_reserved()), None)
    _reset_rss_peak()
    excluded = frozenset(_storage_keys([*model.parameters(), *model.buffers(),
                                        *(_optimizer_tensors(optimizer) if optimizer is not None else [])]))
    tracker = _make_tracker(excluded)
    with tracker:
        run()
    rss_peak = _rss_bytes("VmHWM")
    rss = rss_peak - rss_before if rss_peak and rss_before else None
    return (persistent + int(tracker.peak), "tracked allocation replay (TorchDispatchMode) + persistent tensors",
            None, rss)


def _optimizer_tensors(optimizer: Any) -> list[torch.Tensor]:
    import torch

    return [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]


def _storage_keys(tensors: Iterable[torch.Tensor]) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in tensors}


def _storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (tied weights and views counted once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def _rss_bytes(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process from /proc/self/status (0 where there is none)."""
    try:
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def _reset_rss_peak() -> None:
    """Reset the RSS high-water mark to the current RSS (Linux: ``echo 5 > /proc/self/clear_refs``)."""
    with contextlib.suppress(OSError):
        _CLEAR_REFS.write_text("5")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def check_fits(predicted_bytes: float, available_bytes: int, device: Device) -> None:
    """Refuse, before anything is allocated, a run whose predicted peak exceeds what the device has free."""
    if predicted_bytes <= available_bytes:
        return
    where = Text("fix.measure.free_meminfo") if device is Device.CPU else Text("fix.measure.free_cuda")
    need_gib, free_gib = predicted_bytes / 2**30, available_bytes / 2**30
    raise SpecError(f"this run needs about {need_gib:.2f} GiB at its peak (predicted) but the "
                    f"{device.value} has {free_gib:.2f} GiB free ({where}); measure a smaller model, "
                    "or lower --batch or --seq", key="error.measure.run_too_big",
                    fields={"need_gib": need_gib, "device": device.value, "free_gib": free_gib, "where": where})


__all__ = ["Measurement", "available_memory_bytes", "check_fits", "meminfo_available_bytes", "require_torch",
           "run_measurement"]
