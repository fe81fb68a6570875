"""Total cost of ownership (core/tco.py) against hand-derived arithmetic, and the purchase-price catalog's data."""

from __future__ import annotations

import math
import re

import pytest

from suanli.core.tco import (
    HOURS_PER_YEAR,
    break_even_months,
    capex,
    opex_per_year,
    own_total_usd,
    rent_per_year,
)
from suanli.errors import SpecError
from suanli.spec.assumptions import CostAssumptions, OwnershipAssumptions
from suanli.spec.hardware import get_accelerator
from suanli.spec.purchase import Purchase, load_purchases, preferred_purchase


def _card(usd: float) -> Purchase:
    return Purchase(accelerator="rtx-4090-24gb", unit="gpu", gpus_per_unit=1, usd=usd, kind="msrp",
                    description="test card", date="2024-01", source="test", confidence="high")


def _node(usd: float) -> Purchase:
    return Purchase(accelerator="h100-sxm-80gb", unit="node", gpus_per_unit=8, usd=usd, kind="list",
                    description="test node", date="2024-01-02", source="test", confidence="medium")


def test_hours_per_year_counts_leap_days() -> None:
    assert HOURS_PER_YEAR == 365.25 * 24 == 8766


def test_card_prices_add_the_host_share_in_one_server() -> None:
    spend = capex(_card(1000), 4)  # 4 cards x $1000, host 0.64 of it, one server: no cluster network
    assert (spend.units, spend.gpus) == (4, 4)
    assert spend.hardware_usd == 4000
    assert spend.host_usd == pytest.approx(2560)
    assert spend.network_usd == 0
    assert spend.total_usd == pytest.approx(6560)


def test_cards_beyond_one_server_add_the_cluster_network() -> None:
    spend = capex(_card(1000), 12)  # 12 cards need 2 eight-GPU servers: (12000 + 7680) x 0.15 = 2952
    assert spend.host_usd == pytest.approx(7680)
    assert spend.network_usd == pytest.approx(2952)
    assert spend.total_usd == pytest.approx(22632)


def test_node_prices_are_bought_whole_with_the_host_included() -> None:
    one = capex(_node(200_000), 2)  # two GPUs still buy a whole 8-GPU server
    assert (one.units, one.gpus, one.total_usd, one.host_usd) == (1, 8, 200_000, 0)
    two = capex(_node(200_000), 10)  # 10 GPUs: 2 servers, 16 GPUs, +15% network
    assert (two.units, two.gpus) == (2, 16)
    assert two.network_usd == pytest.approx(60_000)
    assert two.total_usd == pytest.approx(460_000)


def test_opex_energy_colocation_and_maintenance_by_hand() -> None:
    ownership = OwnershipAssumptions(colocation_usd_per_kw_month=184.06, maintenance_fraction_per_year=0.2)
    running = opex_per_year(gpus=8, tdp_w=700, utilization=0.5, capex_usd=300_000, cost=CostAssumptions(),
                            ownership=ownership)
    power_w = 700 * 0.76 * 1.82  # TDP x average fraction x (1 + host overhead) = 968.24 W
    hours = 8766 * 0.5
    kwh = 8 * hours * power_w / 1000 * 1.58  # x PUE
    assert running.power_per_gpu_w == pytest.approx(968.24)
    assert running.energy_kwh == pytest.approx(kwh)
    assert running.energy_kwh == pytest.approx(53_641.58, rel=1e-6)
    assert running.energy_usd == pytest.approx(kwh * 0.0806)
    assert running.colocation_usd == pytest.approx(8 * 0.7 * 1.82 * 184.06 * 12)  # 10.192 kW provisioned
    assert running.maintenance_usd == pytest.approx(60_000)
    assert running.total_usd == pytest.approx(kwh * 0.0806 + 10.192 * 184.06 * 12 + 60_000)


def test_a_given_power_replaces_the_tdp_estimate() -> None:
    running = opex_per_year(gpus=1, tdp_w=450, utilization=1.0, capex_usd=0, power_per_gpu_w=500,
                            ownership=OwnershipAssumptions(pue=1.0, usd_per_kwh=0.10))
    assert running.energy_kwh == pytest.approx(8766 * 0.5)  # 500 W for a year: 4383 kWh
    assert running.energy_usd == pytest.approx(438.3)


def test_rent_and_totals() -> None:
    assert rent_per_year(gpus=2, usd_per_gpu_hour=2.0, utilization=1.0) == pytest.approx(35_064)
    assert rent_per_year(gpus=2, usd_per_gpu_hour=2.0, utilization=0.25) == pytest.approx(8766)
    assert own_total_usd(12_000, 1000, 3) == 15_000


def test_break_even_months() -> None:
    assert break_even_months(12_000, 1000, 7000) == pytest.approx(24)  # saves $6000 a year: 2 years
    assert break_even_months(12_000, 7000, 7000) is None  # renting costs no more than running: never
    assert break_even_months(12_000, 8000, 7000) is None


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.1])
def test_utilization_outside_zero_one_is_refused(bad: float) -> None:
    with pytest.raises(SpecError, match="utilization"):
        rent_per_year(gpus=1, usd_per_gpu_hour=1.0, utilization=bad)


def test_bad_ownership_assumptions_are_refused() -> None:
    with pytest.raises(SpecError, match="electricity"):
        OwnershipAssumptions(usd_per_kwh=0)
    with pytest.raises(SpecError, match="at least 1"):
        OwnershipAssumptions(server_cost_multiplier=0.5)
    with pytest.raises(SpecError, match="maintenance"):
        OwnershipAssumptions(maintenance_fraction_per_year=-0.1)
    with pytest.raises(SpecError, match="years"):
        own_total_usd(1, 1, 0)


def test_every_purchase_price_is_sourced_dated_and_positive() -> None:
    purchases = load_purchases()
    assert len(purchases) >= 10
    for p in purchases:
        get_accelerator(p.accelerator)  # a catalog key
        assert p.usd > 0 and p.usd_per_gpu > 0
        assert re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", p.date), p
        assert "2019" < p.date < "2027", p
        assert p.source.strip() and p.description.strip()
        if p.usd_low is not None and p.usd_high is not None:
            assert p.usd_low <= p.usd <= p.usd_high
            assert p.usd == pytest.approx((p.usd_low + p.usd_high) / 2)  # the header: midpoint of the range
        else:
            assert p.usd_low is None and p.usd_high is None
        assert (p.unit == "node") == (p.gpus_per_unit > 1)


def test_consumer_workstation_and_data_centre_parts_are_priced() -> None:
    for key in ("rtx-3090-24gb", "rtx-4090-24gb", "rtx-5090-32gb", "rtx-6000-ada-48gb", "a100-sxm-80gb",
                "h100-sxm-80gb", "h200-sxm-141gb", "b200-sxm-180gb"):
        assert preferred_purchase(key) is not None, key
    assert preferred_purchase("tpu-v5p") is None  # not sold: absent, not guessed


def test_preferred_price_is_the_most_confident_then_the_latest() -> None:
    h100 = preferred_purchase("h100-sxm-80gb")
    assert h100 is not None and h100.unit == "node" and h100.date == "2024-08-22"
    b200 = preferred_purchase("b200-sxm-180gb")
    assert b200 is not None and b200.confidence == "medium"  # the low-confidence DGX B200 figure is not used


def test_malformed_purchase_entries_are_refused() -> None:
    with pytest.raises(SpecError, match="date"):
        Purchase(accelerator="x", unit="gpu", gpus_per_unit=1, usd=1, kind="msrp", description="d", date="2024",
                 source="s", confidence="high")
    with pytest.raises(SpecError, match="one GPU"):
        Purchase(accelerator="x", unit="gpu", gpus_per_unit=8, usd=1, kind="msrp", description="d",
                 date="2024-01", source="s", confidence="high")
    with pytest.raises(SpecError, match="source"):
        Purchase(accelerator="x", unit="gpu", gpus_per_unit=1, usd=1, kind="msrp", description="d",
                 date="2024-01", source=" ", confidence="high")


def test_prices_per_gpu_with_the_server_share_count_servers_of_eight() -> None:
    per_gpu = Purchase(accelerator="h100-sxm-80gb", unit="node", gpus_per_unit=1, usd=40_000, kind="user",
                       description="user price", date="2026-01-01", source="--purchase-usd", confidence="high")
    assert capex(per_gpu, 8).total_usd == 320_000  # one server: no cluster network, no host share on top
    nine = capex(per_gpu, 9)  # a second server: +15% network
    assert (nine.gpus, nine.host_usd) == (9, 0)
    assert nine.network_usd == pytest.approx(54_000)


def test_the_most_gpus_a_budget_buys() -> None:
    from suanli.search.buy import _affordable_gpus

    o = OwnershipAssumptions()
    card = _card(1000)  # $1640 a card with its host share; past 8 cards every card costs 1640 x 1.15 = 1886
    assert _affordable_gpus(card, 1639, o) == 0
    assert _affordable_gpus(card, 8 * 1640, o) == 8
    assert _affordable_gpus(card, 9 * 1886 - 1, o) == 8  # a 9th card needs a second server and the network
    assert _affordable_gpus(card, 9 * 1886, o) == 9
    assert _affordable_gpus(card, 16 * 1886 - 1, o) == 15
    assert _affordable_gpus(card, 16 * 1886, o) == 16
    assert _affordable_gpus(card, 1e9, o) == math.floor(1e9 / 1886)
    assert _affordable_gpus(_node(200_000), 429_999, o) == 8  # two servers with the network: 460,000
    assert _affordable_gpus(_node(200_000), 460_000, o) == 16
