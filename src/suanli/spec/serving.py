"""How a model is served, and the static batch ``infer`` prices — serving's counterparts of ``TrainingJob`` and
``Layout``.

``Deployment`` is one replica's setup: the accelerator, the tp × ep group, the engine preset with the user's knobs,
the weight and KV formats (None: the checkpoint's and the engine's defaults), CUDA graphs, the host that holds
offloaded layers, the framework's memory overheads and the time model's assumptions. ``core.inference_memory``,
``core.inference_time``, the simulator (whose ``Deployment`` adds replicas, routing and prefill/decode
disaggregation) and ``plan serve`` all start from it.

``StaticBatch`` is ``batch`` requests of ``prompt_tokens`` in and ``output_tokens`` out, started together. The
simulator's traffic (``simulate.workload.Workload``) is something else: arrivals and length distributions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from suanli.errors import SpecError, require_positive
from suanli.i18n import Text
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.engines import EngineKnobs, EnginePreset, FrameworkOverheads, get_engine
from suanli.spec.hardware import Accelerator
from suanli.spec.precision import NumberFormat


def _vllm() -> EnginePreset:
    return get_engine("vllm")


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    """One replica: ``tp`` × ``ep`` GPUs of ``accelerator`` running ``engine`` with ``knobs`` (default vLLM)."""

    accelerator: Accelerator
    engine: EnginePreset = field(default_factory=_vllm)
    knobs: EngineKnobs = field(default_factory=EngineKnobs)
    tp: int = 1
    ep: int = 1
    weights_format: NumberFormat | None = None  # None: the checkpoint's (``checkpoint_weights_format``)
    kv_format: NumberFormat | None = None  # None: the engine's default KV dtype
    cuda_graphs: bool | None = None  # None: the engine's default (off with knobs.enforce_eager)
    host: Accelerator | None = None  # the CPU holding layers offloaded by llama.cpp (-ngl)
    overheads: FrameworkOverheads | None = None  # None: the catalogued framework overheads
    assumptions: PerformanceAssumptions | None = None  # None: the defaults; a calibration profile sets them

    def __post_init__(self) -> None:
        require_positive("tp", self.tp, fix=Text("fix.serving.tp"))
        require_positive("ep", self.ep, fix=Text("fix.serving.ep"))
        if self.host is not None and self.host.kind != "cpu":
            raise SpecError(f"the host for offloaded layers must be a CPU, got {self.host.key} ({self.host.kind}); "
                            "name a CPU from the catalog",
                            key="error.serving.host_cpu", fields={"host": self.host.key, "kind": self.host.kind})

    @property
    def served_engine(self) -> EnginePreset:
        """The engine preset with the knobs applied (the preset itself when no knob is set)."""
        return self.knobs.apply(self.engine)


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticBatch:
    """``batch`` requests of ``prompt_tokens`` prompt tokens and ``output_tokens`` generated tokens each."""

    prompt_tokens: int
    output_tokens: int = 0
    batch: int = 1

    def __post_init__(self) -> None:
        require_positive("batch", self.batch)
        require_positive("prompt_tokens", self.prompt_tokens)
        if self.output_tokens < 0:
            raise SpecError(f"output_tokens must be zero or positive, got {self.output_tokens}",
                            key="error.serving.output_tokens", fields={"value": self.output_tokens})

    @property
    def tokens_per_seq(self) -> int:
        return self.prompt_tokens + self.output_tokens
