"""What a run costs: GPU-hours, dollars, energy, CO2, checkpoints and the price of interruptions.

    gpu_hours        = gpus · wall_s / 3600
    usd              = gpu_hours · usd_per_gpu_hour
    power_per_gpu_w  = tdp_w · power_fraction_of_tdp · (1 + host_overhead_fraction)      (IT power, host share in)
    energy_kwh       = gpu_hours · power_per_gpu_w / 1000 · pue
    co2_kg           = energy_kwh · grid_kg_co2e_per_kwh

The energy line is the accounting of Patterson et al. 2021 ("Carbon Emissions and Large Neural Network
Training", arXiv:2104.10350, Table 4) and Touvron et al. 2023 (LLaMA §6, Llama 2 §2.2.1): accelerator-hours ×
power per accelerator × PUE. They differ only in the power: Meta takes the GPU's TDP and nothing for the host
(power_fraction_of_tdp = 1, host_overhead_fraction = 0); Patterson measured the average system power per
accelerator, host included (pass it as ``power_per_gpu_w``). ``tests/golden/test_published_cost.py``
reproduces both from their stated inputs. Our defaults (``CostAssumptions``) count what a node draws on
average, host included; time spent saving or restarting is counted at the same power.

Prices come from the catalog (``Accelerator.prices``, the cheapest of the asked kind, with its date and
source) or from the user, per GPU-hour.

Checkpoints hold weights + fp32 master weights + optimizer states (gradients are not saved), from
``core.model_states``; a weights-only export is bf16. Sharded saving (DeepSpeed ZeRO, FSDP sharded state dict,
Megatron's distributed checkpoint) spreads the bytes over all GPUs; each writes its share at
``checkpoint_write_bytes_per_s_per_gpu``.

Interruptions (spot pre-emption or hardware failure) every ``mtbi_s`` on average, each losing the work since
the last checkpoint plus a restart: the best compute time between checkpoints is Young's
τ = sqrt(2·C·M) (J. W. Young 1974, "A first order approximation to the optimum checkpoint interval", CACM
17(9)) or Daly's higher-order τ = sqrt(2CM)·[1 + ⅓·sqrt(C/2M) + (C/2M)/9] − C for C < 2M, else τ = M
(J. T. Daly 2006, "A higher order estimate of the optimum checkpoint interval for restart dumps", FGCS 22(3)).
The overhead is Daly's expected wall time for exponentially distributed interruptions,
T_w / T_s = M·e^(R/M)·(e^((τ+C)/M) − 1) / τ, which to first order is C/τ + τ/(2M) + R/M.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from suanli.core.model_states import StateBytes
from suanli.errors import NotFound, SpecError, require_non_negative, require_positive
from suanli.i18n import Joined, Text
from suanli.spec.assumptions import CostAssumptions
from suanli.spec.hardware import Accelerator, Price, PriceKind
from suanli.units import SECONDS_PER_HOUR

WH_PER_KWH = 1000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuPrice:
    """The price used: a catalog entry (kind on-demand/spot/reserved) or the user's (kind "user")."""

    usd_per_gpu_hour: float
    kind: str
    provider: str
    date: str | None
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Energy:
    """Facility energy and emissions of a run, with the inputs that produced them."""

    power_per_gpu_w: float  # IT power per GPU, its share of the host included
    pue: float
    energy_kwh: float  # facility energy: IT energy x PUE
    grid_kg_co2e_per_kwh: float
    co2_kg: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A training checkpoint (weights + master + optimizer states), its bf16 export, and how long saving takes."""

    training_bytes: float
    weights_bytes: float  # weights-only export
    writers: int  # GPUs writing in parallel (1 when one rank saves everything)
    write_bytes_per_gpu: float
    save_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Interruptions:
    """Best checkpoint interval and the expected slowdown from interruptions every ``mtbi_s`` on average."""

    mtbi_s: float
    save_s: float
    restart_s: float
    young_interval_s: float  # compute time between checkpoints, Young 1974
    interval_s: float  # compute time between checkpoints, Daly 2006 (used)
    overhead_fraction: float  # expected wall time / failure-free wall time - 1, Daly's model at interval_s
    first_order_overhead_fraction: float  # C/τ + τ/(2M) + R/M at interval_s


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCost:
    """GPU-hours, price, energy, checkpoint and interruptions of one run. ``gpu_hours``, ``usd`` and the energy
    are for ``expected_wall_s``: the failure-free ``wall_s`` stretched by the interruption overhead, if any."""

    gpus: int
    wall_s: float
    expected_wall_s: float
    gpu_hours: float
    price: GpuPrice | None
    usd: float | None
    energy: Energy | None
    checkpoint: Checkpoint | None
    interruptions: Interruptions | None
    notes: tuple[str, ...] = field(default=())

    @property
    def energy_kwh(self) -> float | None:
        return None if self.energy is None else self.energy.energy_kwh

    @property
    def co2_kg(self) -> float | None:
        return None if self.energy is None else self.energy.co2_kg

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready values, units in the keys; None where a part was not computed."""
        p, e, c, i = self.price, self.energy, self.checkpoint, self.interruptions
        return {
            "gpus": self.gpus, "wall_s": self.wall_s, "expected_wall_s": self.expected_wall_s,
            "gpu_hours": self.gpu_hours, "usd": self.usd,
            "usd_per_gpu_hour": p and p.usd_per_gpu_hour, "price_kind": p and p.kind,
            "price_provider": p and p.provider, "price_date": p and p.date, "price_source": p and p.source,
            "power_per_gpu_w": e and e.power_per_gpu_w, "pue": e and e.pue, "energy_kwh": self.energy_kwh,
            "grid_kg_co2e_per_kwh": e and e.grid_kg_co2e_per_kwh, "co2_kg": self.co2_kg,
            "checkpoint_bytes": c and c.training_bytes, "checkpoint_weights_bytes": c and c.weights_bytes,
            "checkpoint_write_bytes_per_gpu": c and c.write_bytes_per_gpu, "checkpoint_save_s": c and c.save_s,
            "mtbi_s": i and i.mtbi_s, "restart_s": i and i.restart_s,
            "checkpoint_interval_s": i and i.interval_s, "young_interval_s": i and i.young_interval_s,
            "interruption_overhead_fraction": i and i.overhead_fraction,
            "notes": list(self.notes),
        }


def gpu_hours(gpus: int, wall_s: float) -> float:
    """GPU-hours = gpus · wall_s / 3600."""
    require_positive("gpus", gpus)
    require_non_negative("wall_s", wall_s)
    return gpus * wall_s / SECONDS_PER_HOUR


def cheapest_price(accelerator: Accelerator, kind: PriceKind) -> Price:
    """The catalog's cheapest ``kind`` price for ``accelerator``; NotFound naming what it has, and --price."""
    offers = [price for price in accelerator.prices if price.kind == kind]
    if not offers:
        kinds = sorted({price.kind for price in accelerator.prices})
        if not kinds:
            raise NotFound(f"the catalog has no {kind} price for {accelerator.name} (it lists no price at all); "
                           "pass --price USD_PER_GPU_HOUR with your own price per GPU-hour",
                           key="error.core.no_price", fields={"kind": kind, "gpu": accelerator.name})
        raise NotFound(f"the catalog has no {kind} price for {accelerator.name} (it lists {', '.join(kinds)}); "
                       f"pass --price USD_PER_GPU_HOUR with your own price per GPU-hour, or choose --price-kind "
                       f"{' or '.join(kinds)}", key="error.core.no_price_kind",
                       fields={"kind": kind, "gpu": accelerator.name, "listed": ", ".join(kinds),
                               "choices": Joined("join.or", kinds)})
    return min(offers, key=lambda price: price.usd_per_hour)


def gpu_price(accelerator: Accelerator, kind: PriceKind, usd_per_gpu_hour: float | None = None) -> GpuPrice:
    """The user's price per GPU-hour when given, else the catalog's cheapest of ``kind``."""
    if usd_per_gpu_hour is not None:
        require_positive("usd_per_gpu_hour", usd_per_gpu_hour, fix=Text("fix.core.gpu_hour_price"))
        return GpuPrice(usd_per_gpu_hour=usd_per_gpu_hour, kind="user", provider="user", date=None,
                        source="--price")
    price = cheapest_price(accelerator, kind)
    return GpuPrice(usd_per_gpu_hour=price.usd_per_hour, kind=price.kind, provider=price.provider,
                    date=price.date, source=price.source)


def system_power_per_gpu_w(tdp_w: float, *, power_fraction_of_tdp: float, host_overhead_fraction: float) -> float:
    """Average IT power per GPU = tdp_w · power_fraction_of_tdp · (1 + host_overhead_fraction)."""
    require_positive("tdp_w", tdp_w)
    return tdp_w * power_fraction_of_tdp * (1 + host_overhead_fraction)


def energy_kwh(gpu_hours: float, *, power_per_gpu_w: float, pue: float) -> float:
    """Facility energy = GPU-hours · power per GPU (W) / 1000 · PUE (Patterson et al. 2021; Touvron et al. 2023)."""
    require_non_negative("gpu_hours", gpu_hours)
    require_positive("power_per_gpu_w", power_per_gpu_w)
    return gpu_hours * power_per_gpu_w / WH_PER_KWH * pue


def co2_kg(energy_kwh: float, *, grid_kg_co2e_per_kwh: float) -> float:
    """Emissions = energy · the grid's carbon intensity (location-based; renewable contracts not netted)."""
    require_non_negative("grid_kg_co2e_per_kwh", grid_kg_co2e_per_kwh)
    return energy_kwh * grid_kg_co2e_per_kwh


def run_energy(accelerator: Accelerator, hours: float, *, power_per_gpu_w: float | None = None,
               assumptions: CostAssumptions | None = None) -> Energy:
    """Energy and CO2 of ``hours`` GPU-hours; the power defaults to the catalog TDP under the assumptions."""
    a = assumptions or CostAssumptions()
    if power_per_gpu_w is None:
        if accelerator.tdp_w is None:
            raise SpecError(f"{accelerator.name} has no power limit (tdp_w) in the catalog, so its energy is "
                            "unknown; pass the average power per GPU in watts (power_per_gpu_w)",
                            key="error.core.no_tdp", fields={"gpu": accelerator.name})
        power_per_gpu_w = system_power_per_gpu_w(accelerator.tdp_w, power_fraction_of_tdp=a.power_fraction_of_tdp,
                                                 host_overhead_fraction=a.host_overhead_fraction)
    kwh = energy_kwh(hours, power_per_gpu_w=power_per_gpu_w, pue=a.pue)
    return Energy(power_per_gpu_w=power_per_gpu_w, pue=a.pue, energy_kwh=kwh,
                  grid_kg_co2e_per_kwh=a.grid_kg_co2e_per_kwh,
                  co2_kg=co2_kg(kwh, grid_kg_co2e_per_kwh=a.grid_kg_co2e_per_kwh))


def checkpoint(*, params: float, gpus: int, states: StateBytes, sharded: bool = True,
               assumptions: CostAssumptions | None = None) -> Checkpoint:
    """Checkpoint of ``params`` parameters (the trainable ones, for PEFT) with ``states`` bytes per parameter
    (``core.model_states.state_bytes`` or ``adapter_state_bytes``).

    training_bytes = params · (weights + master_weights + optimizer) — gradients are not saved;
    weights_bytes  = params · export_bytes_per_param (bf16);
    save_s         = training_bytes / writers / checkpoint_write_bytes_per_s_per_gpu, with writers = gpus when
                     the save is sharded, 1 when one rank writes everything (``torch.save`` under plain DDP).
    """
    a = assumptions or CostAssumptions()
    require_non_negative("params", params)
    require_positive("gpus", gpus)
    training = params * (states.weights + states.master_weights + states.optimizer)
    writers = gpus if sharded else 1
    per_gpu = training / writers
    return Checkpoint(training_bytes=training, weights_bytes=params * a.export_bytes_per_param, writers=writers,
                      write_bytes_per_gpu=per_gpu, save_s=per_gpu / a.checkpoint_write_bytes_per_s_per_gpu)


def job_mtbi_s(gpus: int, assumptions: CostAssumptions | None = None) -> float:
    """Mean time between hardware interruptions of a job on ``gpus`` GPUs = gpu_mtbi_s / gpus (independent
    failures, any one stops the synchronous job)."""
    require_positive("gpus", gpus)
    return (assumptions or CostAssumptions()).gpu_mtbi_s / gpus


def young_interval_s(save_s: float, mtbi_s: float) -> float:
    """Young (1974): compute time between checkpoints τ = sqrt(2 · save_s · mtbi_s)."""
    require_positive("save_s", save_s)
    require_positive("mtbi_s", mtbi_s)
    return math.sqrt(2 * save_s * mtbi_s)


def daly_interval_s(save_s: float, mtbi_s: float) -> float:
    """Daly (2006) eq. for the optimum: τ = sqrt(2CM)·[1 + ⅓·sqrt(C/2M) + (C/2M)/9] − C for C < 2M, else M."""
    if save_s >= 2 * mtbi_s:
        return mtbi_s
    x = save_s / (2 * mtbi_s)
    return young_interval_s(save_s, mtbi_s) * (1 + math.sqrt(x) / 3 + x / 9) - save_s


def expected_overhead_fraction(interval_s: float, *, save_s: float, mtbi_s: float, restart_s: float) -> float:
    """Daly (2006) expected wall time per unit of work, minus 1: M·e^(R/M)·(e^((τ+C)/M) − 1)/τ − 1."""
    require_positive("interval_s", interval_s)
    require_non_negative("restart_s", restart_s)
    try:
        return mtbi_s * math.exp(restart_s / mtbi_s) * math.expm1((interval_s + save_s) / mtbi_s) / interval_s - 1
    except OverflowError:
        raise SpecError(f"interruptions every {mtbi_s:.4g} s on average leave no time for work between a "
                        f"{save_s:.4g} s checkpoint and a {restart_s:.4g} s restart; use fewer GPUs or "
                        "on-demand capacity, or a faster checkpoint store", key="error.core.interruptions_no_time",
                        fields={"mtbi_s": mtbi_s, "save_s": save_s, "restart_s": restart_s}) from None


def interruptions(*, save_s: float, mtbi_s: float, restart_s: float) -> Interruptions:
    """Young's and Daly's checkpoint intervals and the overhead at Daly's, for checkpoints of ``save_s``,
    interruptions every ``mtbi_s`` on average, and ``restart_s`` lost per interruption beyond the rework."""
    interval = daly_interval_s(save_s, mtbi_s)
    return Interruptions(
        mtbi_s=mtbi_s, save_s=save_s, restart_s=restart_s, young_interval_s=young_interval_s(save_s, mtbi_s),
        interval_s=interval,
        overhead_fraction=expected_overhead_fraction(interval, save_s=save_s, mtbi_s=mtbi_s, restart_s=restart_s),
        first_order_overhead_fraction=save_s / interval + interval / (2 * mtbi_s) + restart_s / mtbi_s)


def run_cost(accelerator: Accelerator, gpus: int, wall_s: float, *, price_kind: PriceKind | None = "on-demand",
             usd_per_gpu_hour: float | None = None, power_per_gpu_w: float | None = None,
             checkpoint: Checkpoint | None = None, mtbi_s: float | None = None,
             assumptions: CostAssumptions | None = None) -> RunCost:
    """Cost of running ``gpus`` accelerators for ``wall_s`` failure-free seconds.

    Price: ``usd_per_gpu_hour`` when given, else the catalog's cheapest ``price_kind`` (NotFound, suggesting
    --price, when it has none); ``price_kind=None`` and no price leaves ``usd`` None. Energy: None, with a
    note, when the catalog has no TDP and no ``power_per_gpu_w`` is given. With ``mtbi_s`` (spot pre-emption
    or ``job_mtbi_s`` for hardware failures) and a ``checkpoint``, the wall time grows by Daly's overhead;
    a restart costs ``restart_setup_s`` plus reading the checkpoint back (as long as saving it).
    """
    a = assumptions or CostAssumptions()
    require_non_negative("wall_s", wall_s)
    notes: list[str] = []
    stalls = None
    if mtbi_s is not None:
        if checkpoint is None:
            raise SpecError(f"interruptions every {mtbi_s:.4g} s need a checkpoint save time; pass "
                            "checkpoint=checkpoint(params=..., gpus=..., states=...)",
                            key="error.core.interruptions_need_checkpoint", fields={"mtbi_s": mtbi_s})
        require_positive("mtbi_s", mtbi_s, fix=Text("fix.core.mtbi"))
        stalls = interruptions(save_s=checkpoint.save_s, mtbi_s=mtbi_s,
                               restart_s=a.restart_setup_s + checkpoint.save_s)
    expected_wall_s = wall_s * (1 + stalls.overhead_fraction) if stalls else wall_s
    hours = gpu_hours(gpus, expected_wall_s)
    price = None
    if usd_per_gpu_hour is not None or price_kind is not None:
        price = gpu_price(accelerator, price_kind or "on-demand", usd_per_gpu_hour)
    energy = None
    if power_per_gpu_w is not None or accelerator.tdp_w is not None:
        energy = run_energy(accelerator, hours, power_per_gpu_w=power_per_gpu_w, assumptions=a)
    else:
        notes.append(Text("note.cost.no_tdp", gpu=accelerator.name))
    return RunCost(gpus=gpus, wall_s=wall_s, expected_wall_s=expected_wall_s, gpu_hours=hours, price=price,
                   usd=None if price is None else hours * price.usd_per_gpu_hour, energy=energy,
                   checkpoint=checkpoint, interruptions=stalls, notes=tuple(notes))
