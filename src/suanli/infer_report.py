"""``suanli infer``: serving memory per GPU on an engine (latency and throughput come with the time model)."""

from __future__ import annotations

from typing import Any

from suanli.core.inference_memory import InferenceMemory, inference_memory
from suanli.quantity import Quantity
from suanli.report import Report
from suanli.spec.engines import EnginePreset
from suanli.spec.hardware import Accelerator
from suanli.spec.model import ModelSpec
from suanli.spec.precision import NumberFormat


def inference_report(spec: ModelSpec, accelerator: Accelerator, *, engine: EnginePreset, tp: int, ep: int,
                     batch: int, prompt_tokens: int, output_tokens: int, weights_format: NumberFormat | None,
                     kv_format: NumberFormat | None) -> Report:
    memory = inference_memory(spec, accelerator, batch=batch, prompt_tokens=prompt_tokens,
                              output_tokens=output_tokens, engine=engine, weights_format=weights_format,
                              kv_format=kv_format, tp=tp, ep=ep)
    values: dict[str, Any] = {"gpu": accelerator.key, "gpus": tp * ep, "engine": engine.key, "tp": tp, "ep": ep,
                              "batch": batch, "prompt_tokens": prompt_tokens, "output_tokens": output_tokens,
                              "memory": _memory_values(memory)}
    notes = []
    if not memory.fits:
        notes.append(_advice(memory))
    return Report(command="infer", model=spec.name, values=values, explanations=_explain(memory),
                  notes=tuple(notes))


def _memory_values(m: InferenceMemory) -> dict[str, Any]:
    per_gpu = {"weights_bytes": m.weights_bytes, "kv_cache_bytes": m.kv_cache_bytes,
               "activations_bytes": m.activation_bytes, "overhead_bytes": m.overhead_bytes,
               "total_bytes": m.total_bytes}
    return {"per_gpu": per_gpu, "fits": m.fits, "kv_capacity_tokens": m.kv_capacity_tokens,
            "kv_budget_bytes": m.kv_budget_bytes, "kv_bytes_per_token": m.kv_bytes_per_token,
            "headroom_bytes": m.headroom_bytes, "reserved_bytes": m.reserved_bytes, "visible_bytes": m.visible_bytes,
            "memory_fraction": m.memory_fraction, "weights_format": m.weights.format_key, "kv_format": m.kv_format,
            "overheads_bytes": dict(m.overheads), "host_bytes": m.host_bytes}


def _advice(m: InferenceMemory) -> str:
    if m.kv_budget_bytes <= 0:
        return ("the weights and overheads leave no room for a KV cache; use more GPUs (--tp), "
                "smaller weights (--quant int4 or fp8) or a GPU with more memory")
    return (f"this batch needs {m.kv_cache_bytes / 2**30:.1f} GiB of KV cache but the pool holds "
            f"{m.kv_budget_bytes / 2**30:.1f} GiB ({m.kv_capacity_tokens:,} tokens); lower --batch or the "
            "context, use --kv-dtype fp8, or add GPUs (--tp)")


def _explain(m: InferenceMemory) -> tuple[Quantity, ...]:
    parts = [Quantity.input(value, name, "B") for name, value in
             (("weights", m.weights_bytes), ("kv_cache", m.kv_cache_bytes), ("activations", m.activation_bytes),
              ("overheads", m.overhead_bytes))]
    total = sum(parts[1:], parts[0]).named("total_bytes_per_gpu", "B", source=f"{m.engine} memory model")
    kv = (Quantity.input(m.batch, "batch") * Quantity.input(m.tokens_per_seq, "tokens_per_seq")
          * Quantity.input(m.kv_bytes_per_token, "kv_bytes_per_token", "B")).named("kv_cache_bytes_unpaged", "B")
    return (total, kv)
