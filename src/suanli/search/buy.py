"""``plan buy``: buy versus rent under a budget, over the accelerators the catalog prices (to buy or to rent) and
on which the named job fits.

For each such accelerator the fewest GPUs that hold the job come from ``search.fit`` (the same evaluators as
``suanli fit``). A training job needs those; a serving job needs them once per replica, with as many replicas as
the rate asks at one replica's max-load throughput (``core.inference_time.max_load_throughput``, the figure
``infer`` reports). Buying rounds up to whole units (an 8-GPU server is bought whole); renting takes the count
the job needs. Each option is priced by ``core.tco`` over the years at the utilization asked, and a training job
is timed on that many GPUs in ``fit``'s layout (ZeRO-3 over all of them) with ``train``'s own report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from suanli.core.cost import cheapest_price
from suanli.core.inference_time import max_load_throughput, serving_setup
from suanli.core.tco import (
    Capex,
    Opex,
    break_even_months,
    busy_hours_per_year,
    capex,
    opex_per_year,
    own_total_usd,
    rent_per_year,
)
from suanli.errors import NotFound, SuanliError
from suanli.search.fit import FIT_RECOMPUTES, Fitter, fit_layout, fit_table
from suanli.spec.assumptions import CostAssumptions, OwnershipAssumptions
from suanli.spec.engines import EnginePreset
from suanli.spec.hardware import Accelerator, Price, load_accelerators
from suanli.spec.model import ModelSpec
from suanli.spec.precision import NumberFormat
from suanli.spec.purchase import Purchase, preferred_purchase
from suanli.spec.training import TrainingJob
from suanli.units import SECONDS_PER_HOUR

Option = Literal["buy", "rent"]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOnGpus:
    """The job on ``gpus`` GPUs: a training run's time, or whether a server of that size serves the rate."""

    gpus: int
    layout: str
    job_s: float | None = None  # training: wall time of --tokens; None without tokens
    tokens_per_s: float | None = None  # training throughput
    replicas: int | None = None  # serving: replicas of min_gpus each
    requests_per_s: float | None = None  # serving: max-load requests/s of all replicas
    serves_rate: bool | None = None  # serving with a rate: whether requests_per_s reaches it


@dataclass(frozen=True, slots=True, kw_only=True)
class JobModel:
    """A job to size: ``fitter`` finds the fewest GPUs that hold it, ``needed`` turns that into the GPUs the job
    needs (serving: times the replicas the rate asks), ``run`` evaluates it on a number of GPUs."""

    fitter: Fitter
    needed: Callable[[Accelerator, int], int]
    run: Callable[[Accelerator, int, int], JobOnGpus]  # (accelerator, min_gpus, gpus)


@dataclass(frozen=True, slots=True, kw_only=True)
class BuyRequest:
    job: JobModel
    budget_usd: float
    years: float
    utilization: float
    accelerators: tuple[Accelerator, ...] | None = None  # None: every accelerator with a price
    purchases: Mapping[str, Purchase] = field(default_factory=dict)  # the user's prices, by accelerator key
    power_per_gpu_w: float | None = None
    cost: CostAssumptions = field(default_factory=CostAssumptions)
    ownership: OwnershipAssumptions = field(default_factory=OwnershipAssumptions)


@dataclass(frozen=True, slots=True, kw_only=True)
class BuyOption:
    """One way to run the job: buy ``gpus`` of an accelerator, or rent them."""

    option: Option
    accelerator: Accelerator
    gpus: int
    min_gpus: int  # the fewest that hold the job (fit)
    needed_gpus: int  # what the job needs (serving: all replicas)
    usd_per_year: float  # buy: running costs; rent: the rent
    total_usd: float  # over the years
    capex: Capex | None = None
    opex: Opex | None = None
    purchase: Purchase | None = None
    rent_price: Price | None = None
    rent_usd_per_year: float | None = None  # buy: renting the same GPUs for the same hours
    break_even_months: float | None = None
    within_budget: bool = True
    max_gpus_within_budget: int | None = None  # buy: whole units the budget pays for
    job: JobOnGpus | None = None
    runs: float | None = None  # training with tokens: runs that fit in the busy hours of the years

    @property
    def usd_per_run(self) -> float | None:
        """Total over the years / runs: what one training run costs when the GPUs run nothing else."""
        return None if not self.runs else self.total_usd / self.runs

    @property
    def capex_usd(self) -> float:
        return 0.0 if self.capex is None else self.capex.total_usd


def on_demand_price(accelerator: Accelerator) -> Price | None:
    """The catalog's cheapest on-demand rental price, or None."""
    try:
        return cheapest_price(accelerator, "on-demand")
    except NotFound:
        return None


def priced_accelerators(also: tuple[str, ...] = ()) -> tuple[Accelerator, ...]:
    """Catalog accelerators with a purchase price or an on-demand rental price (or a key in ``also``, priced by
    the user), in catalog order."""
    return tuple(a for a in load_accelerators() if a.key in also or preferred_purchase(a.key) or on_demand_price(a))


def plan_buy(request: BuyRequest) -> list[BuyOption]:
    """Every buy and rent option on which the job fits, sorted by total cost over the years (cheapest first)."""
    accelerators = request.accelerators if request.accelerators is not None else priced_accelerators(
        tuple(request.purchases))
    options: list[BuyOption] = []
    for row in fit_table(request.job.fitter, accelerators):
        if row.min_gpus is None:
            continue
        accelerator = next(a for a in accelerators if a.key == row.gpu)
        needed = request.job.needed(accelerator, row.min_gpus)
        rent = on_demand_price(accelerator)
        purchase = request.purchases.get(accelerator.key) or preferred_purchase(accelerator.key)
        if purchase is not None and accelerator.tdp_w is not None:  # no TDP: its energy is unknown
            options.append(_buy(request, accelerator, accelerator.tdp_w, row.min_gpus, needed, purchase, rent))
        if rent is not None:
            options.append(_rent(request, accelerator, row.min_gpus, needed, rent))
    return sorted(options, key=lambda o: (o.total_usd, o.option, o.accelerator.key))


def _buy(request: BuyRequest, accelerator: Accelerator, tdp_w: float, min_gpus: int, needed: int,
         purchase: Purchase, rent: Price | None) -> BuyOption:
    spend = capex(purchase, needed, request.ownership)
    running = opex_per_year(gpus=spend.gpus, tdp_w=tdp_w, utilization=request.utilization,
                            capex_usd=spend.total_usd, power_per_gpu_w=request.power_per_gpu_w, cost=request.cost,
                            ownership=request.ownership)
    renting = None if rent is None else rent_per_year(gpus=spend.gpus, usd_per_gpu_hour=rent.usd_per_hour,
                                                      utilization=request.utilization)
    return BuyOption(
        option="buy", accelerator=accelerator, gpus=spend.gpus, min_gpus=min_gpus, needed_gpus=needed,
        usd_per_year=running.total_usd, total_usd=own_total_usd(spend.total_usd, running.total_usd, request.years),
        capex=spend, opex=running, purchase=purchase, rent_price=rent, rent_usd_per_year=renting,
        break_even_months=None if renting is None else break_even_months(spend.total_usd, running.total_usd,
                                                                          renting),
        within_budget=spend.total_usd <= request.budget_usd,
        max_gpus_within_budget=_affordable_gpus(purchase, request.budget_usd, request.ownership),
        job=(job := request.job.run(accelerator, min_gpus, spend.gpus)), runs=_runs(job, request))


def _rent(request: BuyRequest, accelerator: Accelerator, min_gpus: int, needed: int, rent: Price) -> BuyOption:
    per_year = rent_per_year(gpus=needed, usd_per_gpu_hour=rent.usd_per_hour, utilization=request.utilization)
    job = request.job.run(accelerator, min_gpus, needed)
    return BuyOption(option="rent", accelerator=accelerator, gpus=needed, min_gpus=min_gpus, needed_gpus=needed,
                     usd_per_year=per_year, total_usd=per_year * request.years, rent_price=rent,
                     rent_usd_per_year=per_year, job=job, runs=_runs(job, request))


def _runs(job: JobOnGpus, request: BuyRequest) -> float | None:
    """Training runs that fit in the busy time = years · 8766 h · utilization · 3600 / job_s."""
    if job.job_s is None or job.job_s <= 0:
        return None
    return request.years * busy_hours_per_year(request.utilization) * SECONDS_PER_HOUR / job.job_s


def _affordable_gpus(purchase: Purchase, budget_usd: float, ownership: OwnershipAssumptions) -> int:
    """The most GPUs (whole units) whose capex fits the budget; 0 when not even one unit does. Capex is linear in
    the units within one server and beyond it (with the cluster network), so each piece is solved directly."""
    per_unit = capex(purchase, purchase.gpus_per_unit, ownership).total_usd
    in_one_server = max(1, ownership.gpus_per_server // purchase.gpus_per_unit)
    units = min(math.floor(budget_usd / per_unit), in_one_server)
    beyond = math.floor(budget_usd / (per_unit * ownership.cluster_interconnect_multiplier))
    if beyond > in_one_server:
        units = beyond
    while units > 0 and capex(purchase, units * purchase.gpus_per_unit, ownership).total_usd > budget_usd:
        units -= 1  # rounding at a piece's edge
    return units * purchase.gpus_per_unit


def training_job(spec: ModelSpec, job: TrainingJob, fitter: Fitter, *, micro_batch: int,
                 tokens: float | None, global_batch: int | None) -> JobModel:
    """Training needs the fewest GPUs that hold it; on ``gpus`` it runs in ``fit``'s layout (ZeRO-3 over all,
    recompute off unless memory asks for full), timed by ``train``'s report."""
    from suanli.train_report import training_report

    def run(accelerator: Accelerator, min_gpus: int, gpus: int) -> JobOnGpus:
        for recompute in FIT_RECOMPUTES:
            layout = fit_layout(gpus, micro_batch=micro_batch, recompute=recompute)
            if global_batch is not None:
                layout = replace(layout, global_batch=global_batch)
            report = training_report(spec, job, layout, accelerator, tokens=tokens).values
            if report["memory"]["fits"]:
                break
        time = report["time"]
        name = f"{'ZeRO-3, ' if gpus > 1 else ''}recompute {recompute.value}"
        return JobOnGpus(gpus=gpus, layout=name, job_s=time.get("total_s"), tokens_per_s=time["tokens_per_s"])

    return JobModel(fitter=fitter, needed=lambda accelerator, min_gpus: min_gpus, run=_guarded(run))


def serving_job(spec: ModelSpec, fitter: Fitter, *, engine: EnginePreset, weights_format: NumberFormat | None,
                kv_format: NumberFormat | None, prompt_tokens: int, output_tokens: int,
                rate: float | None) -> JobModel:
    """Serving needs replicas of the fewest GPUs that hold one sequence (tensor parallel over them), as many as
    ``rate`` asks at one replica's max-load requests/s."""

    def replica_requests_per_s(accelerator: Accelerator, tp: int) -> float:
        setup = serving_setup(spec, accelerator, engine=engine, weights_format=weights_format, kv_format=kv_format,
                              tp=tp)
        return max_load_throughput(setup, prompt_tokens=prompt_tokens, output_tokens=output_tokens).requests_per_s

    def needed(accelerator: Accelerator, min_gpus: int) -> int:
        if rate is None:
            return min_gpus
        try:
            per_replica = replica_requests_per_s(accelerator, min_gpus)
        except SuanliError:
            return min_gpus
        return min_gpus * max(1, math.ceil(rate / per_replica)) if per_replica > 0 else min_gpus

    def run(accelerator: Accelerator, min_gpus: int, gpus: int) -> JobOnGpus:
        replicas = gpus // min_gpus
        total = replicas * replica_requests_per_s(accelerator, min_gpus)
        return JobOnGpus(gpus=gpus, layout=f"{replicas} × tp {min_gpus}, {engine.key}", replicas=replicas,
                         requests_per_s=total, serves_rate=None if rate is None else total >= rate)

    return JobModel(fitter=fitter, needed=needed, run=_guarded(run))


def _guarded(run: Callable[[Accelerator, int, int], JobOnGpus]) -> Callable[[Accelerator, int, int], JobOnGpus]:
    """``run``, or an empty evaluation naming the failure when the core refuses the layout."""

    def guarded(accelerator: Accelerator, min_gpus: int, gpus: int) -> JobOnGpus:
        try:
            return run(accelerator, min_gpus, gpus)
        except SuanliError as exc:
            return JobOnGpus(gpus=gpus, layout=f"not evaluated: {exc}")

    return guarded
