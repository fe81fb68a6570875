"""Engine defaults that depend on the model and the machine rather than on one number: TGI v3's
compute-sized prefill budget and the NVLink SHARP buffers NCCL sets up under tensor parallelism.
Their sources are in ``catalog/engines.toml``; ``core.inference_memory`` uses both."""

from __future__ import annotations

from suanli.core.params import count_params
from suanli.spec.engines import EnginePreset, FrameworkOverheads, framework_overheads
from suanli.spec.hardware import Accelerator
from suanli.spec.model import ModelSpec


def compute_optimal_prefill_tokens(spec: ModelSpec, accelerator: Accelerator, *, tp: int, seconds: float) -> int | None:
    """TGI v3's default ``max_batch_prefill_tokens`` (launcher ``compute_optimal``): the tokens ``seconds`` of the
    tp GPUs' f16 peak compute, f16 peak × tp × seconds / FLOPs per token, at most the model's context. FLOPs per
    token as TGI's ``Config::flop`` counts them: 2 × the active non-embedding parameters plus 2·H·d·h per
    attention layer (its "attn" term). TGI takes the peak from its own card table (H100 900 TFLOP/s where our
    catalog has 989), so this is ~10% above its figure there. None where the catalog has no f16 peak.
    Llama-3.1-8B on one H100: 989e12 / 15.0e9 ≈ 65,800 tokens (TGI: 900e12 / 15.0e9 = 60,000)."""
    peak = accelerator.peak_flops_per_s.get("fp16") or accelerator.peak_flops_per_s.get("bf16")
    counts = count_params(spec)
    attention = sum(2 * x.attention.num_heads * x.attention.head_dim * spec.hidden_size
                    for x in spec.layers if x.attention is not None)
    flops = 2 * (counts.active - counts.embedding - counts.components.get("lm_head", 0)) + attention
    if not peak or flops <= 0:
        return None
    return int(min(peak * tp * seconds / flops, spec.max_position_embeddings))


def nvls_bytes(engine: EnginePreset, accelerator: Accelerator | None, *, tp: int,
               overheads: FrameworkOverheads | None = None) -> float:
    """NCCL's NVLink SHARP buffers on one GPU: communicators × tp × nvlsPerRankSize, when the engine leaves NVLS
    on, tp is above two and inside one NVSwitch (gen 3+) domain (sources in engines.toml ``[overheads]``).
    Qwen3-235B-FP8 at tp 4 on H100 under vLLM: 2 × 4 × 288 MiB = 2.25 GiB."""
    o = overheads or framework_overheads()
    link = accelerator.scale_up if accelerator is not None else None
    if engine.nvls_communicators == 0 or link is None or tp < o.nvls_min_ranks or tp > link.domain_size:
        return 0.0
    if link.interconnect.key not in o.nvls_interconnects or link.topology != "switch":
        return 0.0
    return engine.nvls_communicators * tp * o.nvls_per_rank_bytes
