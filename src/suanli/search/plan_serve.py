"""``plan serve``: the fewest GPUs, or the lowest $/hour, that serve ``rate`` requests/s within TTFT and TPOT
targets — over accelerators, tensor parallelism, replicas and prefill/decode disaggregation.

Two passes, the cheap one first (DESIGN.md §3.8):

1. **Analytic sizing** with ``infer``'s model (``core.inference_time``): for each accelerator, tp and (for a MoE
   model) expert parallelism over the tp group that holds
   the model with room for the KV cache, the largest decode batch whose step meets the TPOT target
   (``decode_step_time`` at the mean context, bounded by the KV pool and the engine's ``max_num_seqs``), hence
   the requests/s one replica sustains, r = c / (prefill + (O − 1) · TPOT(c)), and the replicas the rate needs.
   A disaggregated candidate sizes its prefill replicas by prefill time per request (prompts batched to the
   engine's token budget) and its decode replicas as above. Rejections are counted by reason.
2. **Simulation** of the cheapest candidates (``simulate()``, the same roofline step by step, with queueing,
   chunked prefill and the scheduler): a candidate passes when the 90th percentiles of TTFT and TPOT meet the
   targets (DistServe's 90% SLO attainment, Zhong et al. 2024, arXiv:2401.09670 §2); one that misses gets one
   more replica (up to ``MAX_EXTRA_REPLICAS``) before it is dropped.

The objective is the number of GPUs, or dollars per hour at the catalog's cheapest on-demand price.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from suanli.core.cost import cheapest_price
from suanli.core.inference_memory import engine_setting, serving_memory
from suanli.core.inference_time import ServingSetup, decode_step_time, deployment_setup, prefill_time
from suanli.errors import NotFound, SuanliError, require_positive
from suanli.i18n import Text
from suanli.simulate.api import Deployment, simulate
from suanli.simulate.metrics import ServingMetrics, Slo
from suanli.simulate.workload import LengthDist, Workload
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.engines import EnginePreset
from suanli.spec.hardware import Accelerator
from suanli.spec.model import ModelSpec, Moe
from suanli.spec.precision import NumberFormat
from suanli.spec.serving import Deployment as ServingDeployment
from suanli.spec.serving import StaticBatch

TP_DEGREES = (1, 2, 4, 8, 16)
MAX_EXTRA_REPLICAS = 3
FINALISTS = 3  # simulated per accelerator (cheapest analytic candidates)
SIMULATED_SECONDS = 60.0  # each check simulates about a minute of traffic …
MIN_REQUESTS, MAX_SIM_REQUESTS = 200, 3000  # … within these bounds


class Objective(Enum):
    GPUS = "gpus"
    COST = "cost"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeCandidate:
    accelerator: Accelerator
    tp: int
    ep: int = 1  # experts split ep ways inside the tp group (each expert tp/ep ways), as infer models EP
    replicas: int  # mixed replicas, or prefill + decode replicas under pd
    pd: tuple[int, int] | None
    usd_per_gpu_hour: float | None
    assumptions: PerformanceAssumptions | None = None  # the time model's efficiencies (a calibration profile's)

    @property
    def gpus(self) -> int:
        return self.tp * (sum(self.pd) if self.pd else self.replicas)

    @property
    def usd_per_hour(self) -> float | None:
        return None if self.usd_per_gpu_hour is None else self.gpus * self.usd_per_gpu_hour

    def deployment(self, engine: EnginePreset, weights_format: NumberFormat | None) -> Deployment:
        """This candidate as the simulator's (and the exporter's) deployment."""
        return Deployment(accelerator=self.accelerator, engine=engine, tp=self.tp, ep=self.ep,
                          replicas=1 if self.pd else self.replicas, pd=self.pd, weights_format=weights_format,
                          assumptions=self.assumptions)

    def key(self, objective: Objective) -> tuple[float, float, str]:
        cost = self.usd_per_hour if self.usd_per_hour is not None else math.inf
        first = self.gpus if objective is Objective.GPUS else cost
        second = cost if objective is Objective.GPUS else self.gpus
        return first, second, self.accelerator.key


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckedPlan:
    candidate: ServeCandidate
    metrics: ServingMetrics


@dataclass(frozen=True, slots=True, kw_only=True)
class ServePlan:
    best: CheckedPlan | None
    checked: tuple[CheckedPlan, ...]
    rejected: dict[str, int] = field(default_factory=dict)
    evaluated: int = 0
    simulated: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeTarget:
    """What must be served: ``rate_per_s`` requests/s of ``prompt_tokens`` + ``output_tokens`` tokens, with the
    90th percentiles of TTFT and TPOT within ``ttft_s`` and ``tpot_s``."""

    rate_per_s: float
    prompt_tokens: int
    output_tokens: int
    ttft_s: float
    tpot_s: float

    def __post_init__(self) -> None:
        require_positive("rate", self.rate_per_s, fix=Text("fix.plan.rate"))
        require_positive("prompt", self.prompt_tokens)
        require_positive("output", self.output_tokens)
        require_positive("TTFT target", self.ttft_s, fix=Text("fix.plan.slo_ttft"))
        require_positive("TPOT target", self.tpot_s, fix=Text("fix.plan.slo_tpot"))

    @property
    def slo(self) -> Slo:
        return Slo(ttft_s=self.ttft_s, tpot_s=self.tpot_s)

    @property
    def mean_decode_context(self) -> int:
        """Tokens cached at a decode step, averaged over the output: the prompt plus half the output."""
        return self.prompt_tokens + self.output_tokens // 2


def plan_serve(spec: ModelSpec, target: ServeTarget, accelerators: Sequence[Accelerator], *, engine: EnginePreset,
               objective: Objective = Objective.GPUS, weights_format: NumberFormat | None = None,
               max_gpus: int = 512, seed: int = 0, assumptions: PerformanceAssumptions | None = None) -> ServePlan:
    """The best deployment (module docstring)."""
    rejected: Counter[str] = Counter()
    candidates: list[ServeCandidate] = []
    evaluated = 0
    for acc in accelerators:
        priced, price = _price(acc, objective, rejected)
        if not priced:
            continue
        for tp in TP_DEGREES:
            for ep in _ep_degrees(spec, tp):
                evaluated += 1
                candidates.extend(_size(spec, target, acc, tp, ep, engine, weights_format, price, max_gpus, rejected,
                                        assumptions=assumptions))
    checked, simulated = _check(spec, target, candidates, engine, weights_format, objective, rejected, seed)
    # ties (same GPUs and cost): the simpler deployment (no disaggregation), then the faster first token
    checked.sort(key=lambda c: (*c.candidate.key(objective)[:2], c.candidate.pd is not None, c.metrics.ttft.p90))
    return ServePlan(best=checked[0] if checked else None, checked=tuple(checked), rejected=dict(rejected),
                     evaluated=evaluated, simulated=simulated)


def _price(acc: Accelerator, objective: Objective, rejected: Counter[str]) -> tuple[bool, float | None]:
    """(usable, on-demand $/GPU-hour): an accelerator without a price is usable only when counting GPUs."""
    try:
        return True, cheapest_price(acc, "on-demand").usd_per_hour
    except NotFound:
        if objective is Objective.COST:
            rejected["no on-demand price in the catalog"] += 1
            return False, None
        return True, None


def _ep_degrees(spec: ModelSpec, tp: int) -> tuple[int, ...]:
    """Expert parallelism to try at this tp: none, and for a MoE model whose experts split evenly, all of the tp
    group (whole experts per GPU instead of slices of every expert)."""
    experts = {layer.ffn.num_experts for layer, _ in spec.layer_groups() if isinstance(layer.ffn, Moe)}
    if tp > 1 and experts and all(e % tp == 0 for e in experts):
        return (1, tp)
    return (1,)


def _size(spec: ModelSpec, target: ServeTarget, acc: Accelerator, tp: int, ep: int, engine: EnginePreset,
          weights_format: NumberFormat | None, price: float | None, max_gpus: int,
          rejected: Counter[str], *, assumptions: PerformanceAssumptions | None = None) -> list[ServeCandidate]:
    """Analytic candidates for one accelerator and tp: mixed replicas, and the best P:D split."""
    length = target.prompt_tokens + target.output_tokens
    try:
        replica = ServingDeployment(accelerator=acc, engine=engine, tp=tp, ep=ep, weights_format=weights_format,
                                    assumptions=assumptions)
        memory = serving_memory(spec, replica, StaticBatch(prompt_tokens=target.prompt_tokens,
                                                           output_tokens=target.output_tokens))
        setup = deployment_setup(spec, replica)
    except SuanliError as exc:
        rejected[_reason(exc)] += 1
        return []
    if memory.kv_capacity_tokens < length:
        rejected["weights leave no room for one request's KV cache"] += 1
        return []
    seqs = engine_setting(engine, acc, tp=tp).max_num_seqs or memory.kv_capacity_tokens // length
    batch = _slo_batch(setup, target, min(seqs, memory.kv_capacity_tokens // length))
    if batch == 0:
        rejected["TPOT target below one sequence's decode step"] += 1
        return []
    prefill = prefill_time(setup, batch=1, prompt_tokens=target.prompt_tokens).time_s
    if prefill > target.ttft_s:
        rejected["TTFT target below one prompt's prefill"] += 1
        return []
    tpot = decode_step_time(setup, batch=batch, context=target.mean_decode_context).time_s
    per_replica = batch / (prefill * batch + (target.output_tokens - 1) * tpot)  # prefills share the replica
    out = []
    replicas = math.ceil(target.rate_per_s / per_replica)
    if replicas * tp <= max_gpus:
        out.append(ServeCandidate(accelerator=acc, tp=tp, ep=ep, replicas=replicas, pd=None, usd_per_gpu_hour=price,
                                  assumptions=assumptions))
    else:
        rejected[f"needs more than --max-gpus {max_gpus}"] += 1
    decode_rate = batch / ((target.output_tokens - 1) * tpot)
    prefill_rate = 1 / prefill
    pd = (math.ceil(target.rate_per_s / prefill_rate * PD_PREFILL_HEADROOM), math.ceil(target.rate_per_s / decode_rate))
    if sum(pd) * tp <= max_gpus:
        out.append(ServeCandidate(accelerator=acc, tp=tp, ep=ep, replicas=sum(pd), pd=pd, usd_per_gpu_hour=price,
                                  assumptions=assumptions))
    return out


# Prefill replicas sized for the mean rate queue without bound under Poisson bursts; ~30% spare keeps the
# prefill queue short (an M/D/1 queue at utilisation 0.77 waits about 1.7 service times on average).
PD_PREFILL_HEADROOM = 1.3


def _slo_batch(setup: ServingSetup, target: ServeTarget, limit: int) -> int:
    """The largest decode batch (≤ limit) whose step at the mean context meets the TPOT target (binary search:
    the step time grows with the batch)."""
    def ok(batch: int) -> bool:
        return decode_step_time(setup, batch=batch, context=target.mean_decode_context).time_s <= target.tpot_s

    if limit < 1 or not ok(1):
        return 0
    low, high = 1, limit
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if ok(mid) else (low, mid - 1)
    return low


def _check(spec: ModelSpec, target: ServeTarget, candidates: list[ServeCandidate], engine: EnginePreset,
           weights_format: NumberFormat | None, objective: Objective, rejected: Counter[str],
           seed: int) -> tuple[list[CheckedPlan], int]:
    """Simulate the cheapest few per accelerator; add replicas to one that misses the SLO."""
    by_acc: dict[str, list[ServeCandidate]] = {}
    for c in sorted(candidates, key=lambda c: c.key(objective)):
        by_acc.setdefault(c.accelerator.key, []).append(c)
    checked, simulated = [], 0
    requests = min(max(MIN_REQUESTS, round(target.rate_per_s * SIMULATED_SECONDS)), MAX_SIM_REQUESTS)
    workload = Workload(requests=requests, prompt=LengthDist.constant(target.prompt_tokens),
                        output=LengthDist.constant(target.output_tokens), rate_per_s=target.rate_per_s, seed=seed)
    for group in by_acc.values():
        for candidate in group[:FINALISTS]:
            for extra in range(MAX_EXTRA_REPLICAS + 1):
                c = _grow(candidate, extra)
                try:
                    metrics = _simulate(spec, c, workload, engine, weights_format, target.slo)
                except SuanliError as exc:
                    rejected[_reason(exc)] += 1
                    break
                simulated += 1
                if _meets(metrics, target.slo):
                    checked.append(CheckedPlan(candidate=c, metrics=metrics))
                    break
            else:
                rejected["misses the SLO in simulation even with more replicas"] += 1
    return checked, simulated


def _grow(c: ServeCandidate, extra: int) -> ServeCandidate:
    if not extra:
        return c
    if c.pd is None:
        return replace(c, replicas=c.replicas + extra)
    prefill, decode = c.pd
    grown = (prefill + (extra + 1) // 2, decode + extra // 2)  # alternate: prefill first
    return replace(c, pd=grown, replicas=sum(grown))


def _simulate(spec: ModelSpec, c: ServeCandidate, workload: Workload, engine: EnginePreset,
              weights_format: NumberFormat | None, slo: Slo) -> ServingMetrics:
    return simulate(spec, c.deployment(engine, weights_format), workload, slo=slo, keep_timeline=False).metrics


def _meets(m: ServingMetrics, slo: Slo) -> bool:
    return m.ttft.p90 <= (slo.ttft_s or math.inf) and m.tpot.p90 <= (slo.tpot_s or math.inf)


def _reason(exc: SuanliError) -> str:
    """A rejection reason shared by many candidates: the error's first clause, numbers dropped."""
    text = "".join(ch for ch in str(exc).split(";")[0] if not ch.isdigit())
    return " ".join(text.split())[:90] or type(exc).__name__
