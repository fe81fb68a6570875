"""Total cost of ownership: buy GPUs and run them for some years, or rent the same GPUs for the same hours.

    units            = ceil(gpus / gpus_per_unit)                  (servers are bought whole)
    hardware_usd     = units · usd_per_unit
    host_usd         = hardware_usd · (server_cost_multiplier − 1)  for prices of cards alone; 0 for node prices
    network_usd      = (hardware_usd + host_usd) · (cluster_interconnect_multiplier − 1)  when the GPUs span more
                       than one server, else 0
    capex_usd        = hardware_usd + host_usd + network_usd
    busy_hours/yr    = 8766 · utilization                            (365.25 days)
    power_per_gpu_w  = tdp_w · power_fraction_of_tdp · (1 + host_overhead_fraction)     (core.cost)
    energy_kwh/yr    = gpus · busy_hours · power_per_gpu_w / 1000 · pue                 (core.cost.energy_kwh)
    energy_usd/yr    = energy_kwh · usd_per_kwh
    colocation/yr    = gpus · tdp_w · (1 + host_overhead_fraction) / 1000 · usd_per_kw_month · 12
    maintenance/yr   = capex_usd · maintenance_fraction_per_year
    opex/yr          = energy_usd + colocation + maintenance
    own_total(Y)     = capex_usd + Y · opex/yr
    rent/yr          = gpus · busy_hours · usd_per_gpu_hour
    break-even       = capex_usd / (rent/yr − opex/yr) years, × 12 for months; none when renting costs no more
                       per year than running the bought GPUs.

The accounting of capex with a server and a cluster-network multiple on the GPUs' price is Epoch AI's (Cottier
et al. 2024, "The rising costs of training frontier AI models", arXiv:2405.21015); the energy line is the one
``core.cost`` uses for runs. Left out: resale value, financing, staff, building, taxes and depreciation rules, the
idle power of bought GPUs in the hours they are not busy (tdp · idle fraction · (1 − utilization), tens of
percent of the energy at low utilization), and price changes over the years. Renting is priced at the catalog's
hourly rate with nothing else (storage and egress are extra at most clouds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from suanli.core.cost import energy_kwh, system_power_per_gpu_w
from suanli.errors import SpecError, require_non_negative, require_positive
from suanli.spec.assumptions import CostAssumptions, OwnershipAssumptions
from suanli.spec.purchase import Purchase

HOURS_PER_YEAR = 365.25 * 24
MONTHS_PER_YEAR = 12
WATTS_PER_KW = 1000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Capex:
    """What buying ``gpus`` GPUs costs up front, split into the quoted hardware, the host and the network."""

    units: int  # servers or cards bought
    gpus: int  # GPUs bought (whole servers: a multiple of gpus_per_unit)
    hardware_usd: float
    host_usd: float
    network_usd: float

    @property
    def total_usd(self) -> float:
        return self.hardware_usd + self.host_usd + self.network_usd


@dataclass(frozen=True, slots=True, kw_only=True)
class Opex:
    """What running the bought GPUs costs per year."""

    power_per_gpu_w: float
    busy_hours_per_year: float
    energy_kwh: float
    energy_usd: float
    colocation_usd: float
    maintenance_usd: float

    @property
    def total_usd(self) -> float:
        return self.energy_usd + self.colocation_usd + self.maintenance_usd


def bought_units(gpus: int, gpus_per_unit: int) -> int:
    """units = ceil(gpus / gpus_per_unit): servers come whole."""
    require_positive("gpus", gpus)
    require_positive("gpus_per_unit", gpus_per_unit)
    return math.ceil(gpus / gpus_per_unit)


def capex(purchase: Purchase, gpus: int, assumptions: OwnershipAssumptions | None = None) -> Capex:
    """Up-front cost of ``gpus`` GPUs at ``purchase``'s price: whole units; the host share added to card prices;
    the cluster network added when the GPUs need more than one server (module docstring)."""
    a = assumptions or OwnershipAssumptions()
    units = bought_units(gpus, purchase.gpus_per_unit)
    bought = units * purchase.gpus_per_unit
    hardware = units * purchase.usd
    host = 0.0 if purchase.includes_host else hardware * (a.server_cost_multiplier - 1)
    whole_servers = purchase.includes_host and purchase.gpus_per_unit >= a.gpus_per_server
    servers = units if whole_servers else math.ceil(bought / a.gpus_per_server)
    network = (hardware + host) * (a.cluster_interconnect_multiplier - 1) if servers > 1 else 0.0
    return Capex(units=units, gpus=bought, hardware_usd=hardware, host_usd=host, network_usd=network)


def busy_hours_per_year(utilization: float) -> float:
    """Hours a year the GPUs work = 8766 · utilization."""
    if not 0 < utilization <= 1:
        raise SpecError(f"utilization must be in (0, 1] (the share of the year the GPUs are busy), got {utilization}",
                        key="error.core.utilization_range", fields={"value": utilization})
    return HOURS_PER_YEAR * utilization


def opex_per_year(*, gpus: int, tdp_w: float, utilization: float, capex_usd: float,
                  power_per_gpu_w: float | None = None, cost: CostAssumptions | None = None,
                  ownership: OwnershipAssumptions | None = None) -> Opex:
    """Energy (at the site's PUE and electricity price), colocation and maintenance of the bought GPUs per year.
    ``power_per_gpu_w`` defaults to ``core.cost``'s average draw: tdp · power fraction · (1 + host overhead)."""
    c, o = cost or CostAssumptions(), ownership or OwnershipAssumptions()
    require_positive("gpus", gpus)
    require_non_negative("capex_usd", capex_usd)
    hours = busy_hours_per_year(utilization)
    power = power_per_gpu_w if power_per_gpu_w is not None else system_power_per_gpu_w(
        tdp_w, power_fraction_of_tdp=c.power_fraction_of_tdp, host_overhead_fraction=c.host_overhead_fraction)
    kwh = energy_kwh(gpus * hours, power_per_gpu_w=power, pue=o.pue)
    colocation = 0.0
    if o.colocation_usd_per_kw_month is not None:
        provisioned_kw = gpus * tdp_w * (1 + c.host_overhead_fraction) / WATTS_PER_KW
        colocation = provisioned_kw * o.colocation_usd_per_kw_month * MONTHS_PER_YEAR
    return Opex(power_per_gpu_w=power, busy_hours_per_year=hours, energy_kwh=kwh, energy_usd=kwh * o.usd_per_kwh,
                colocation_usd=colocation, maintenance_usd=capex_usd * o.maintenance_fraction_per_year)


def rent_per_year(*, gpus: int, usd_per_gpu_hour: float, utilization: float) -> float:
    """Renting the same GPUs for the same busy hours = gpus · 8766 · utilization · usd_per_gpu_hour."""
    require_positive("gpus", gpus)
    require_positive("usd_per_gpu_hour", usd_per_gpu_hour)
    return gpus * busy_hours_per_year(utilization) * usd_per_gpu_hour


def own_total_usd(capex_usd: float, opex_usd_per_year: float, years: float) -> float:
    """Owning for ``years`` = capex + years · opex per year."""
    require_positive("years", years)
    return capex_usd + years * opex_usd_per_year


def break_even_months(capex_usd: float, opex_usd_per_year: float, rent_usd_per_year: float) -> float | None:
    """Months after which buying has cost less than renting = 12 · capex / (rent/yr − opex/yr); None when renting
    costs no more per year than running the bought GPUs (buying never catches up)."""
    require_non_negative("capex_usd", capex_usd)
    saving = rent_usd_per_year - opex_usd_per_year
    if saving <= 0:
        return None
    return MONTHS_PER_YEAR * capex_usd / saving
