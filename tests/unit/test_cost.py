"""GPU-hours, prices, energy, CO2, checkpoints and interruption overhead, derived by hand."""

from __future__ import annotations

import dataclasses
import math

import pytest

from suanli.core.cost import (
    cheapest_price,
    checkpoint,
    co2_kg,
    daly_interval_s,
    energy_kwh,
    expected_overhead_fraction,
    gpu_hours,
    gpu_price,
    interruptions,
    job_mtbi_s,
    run_cost,
    run_energy,
    system_power_per_gpu_w,
    young_interval_s,
)
from suanli.core.model_states import state_bytes
from suanli.errors import NotFound, SpecError
from suanli.spec.assumptions import CostAssumptions
from suanli.spec.hardware import Accelerator, Price, get_accelerator
from suanli.spec.training import Optimizer, PrecisionMode

HOUR = 3600.0
AT_TDP = CostAssumptions(power_fraction_of_tdp=1.0, host_overhead_fraction=0.0, pue=1.2, grid_kg_co2e_per_kwh=0.5)


def _priced(*prices: tuple[float, str]) -> Accelerator:
    """The catalog H100 with the given (usd_per_hour, kind) prices instead of its own."""
    return dataclasses.replace(get_accelerator("h100"), prices=tuple(
        Price(usd_per_hour=usd, kind=kind, provider=f"cloud-{i}", date=f"2025-0{i + 1}", source=f"page-{i}")
        for i, (usd, kind) in enumerate(prices)))


def test_gpu_hours_and_user_price() -> None:
    assert gpu_hours(1000, HOUR) == 1000
    cost = run_cost(_priced(), 1000, HOUR, usd_per_gpu_hour=2.0)
    assert cost.gpu_hours == 1000
    assert cost.usd == 2000  # 1000 GPU-hours x $2/h
    assert cost.price is not None and cost.price.kind == "user" and cost.price.date is None


def test_cheapest_catalog_price_of_each_kind_carries_date_and_source() -> None:
    acc = _priced((3.0, "on-demand"), (2.5, "on-demand"), (1.2, "spot"), (4.0, "reserved"))
    assert cheapest_price(acc, "on-demand").usd_per_hour == 2.5
    spot = gpu_price(acc, "spot")
    assert (spot.usd_per_gpu_hour, spot.kind, spot.provider, spot.date, spot.source) == (
        1.2, "spot", "cloud-2", "2025-03", "page-2")
    cost = run_cost(acc, 8, 10 * HOUR, price_kind="reserved")
    assert cost.usd == pytest.approx(80 * 4.0)
    assert cost.to_dict()["price_source"] == "page-3"


def test_missing_price_names_the_accelerator_and_suggests_price() -> None:
    acc = _priced((2.5, "on-demand"))
    with pytest.raises(NotFound, match=r"no spot price for NVIDIA H100.*it lists on-demand.*--price"):
        run_cost(acc, 8, HOUR, price_kind="spot")
    with pytest.raises(NotFound, match=r"no on-demand price .* no price at all.*--price"):
        gpu_price(_priced(), "on-demand")
    assert run_cost(_priced(), 8, HOUR, price_kind=None).usd is None  # no price asked for


def test_energy_8_gpus_700w_10h_pue_1_2() -> None:
    power = system_power_per_gpu_w(700, power_fraction_of_tdp=1.0, host_overhead_fraction=0.0)
    kwh = energy_kwh(gpu_hours(8, 10 * HOUR), power_per_gpu_w=power, pue=1.2)
    assert kwh == pytest.approx(8 * 0.7 * 10 * 1.2)  # 67.2 kWh
    assert co2_kg(kwh, grid_kg_co2e_per_kwh=0.5) == pytest.approx(33.6)
    cost = run_cost(_priced(), 8, 10 * HOUR, price_kind=None, assumptions=AT_TDP)
    assert cost.energy_kwh == pytest.approx(67.2)
    assert cost.co2_kg == pytest.approx(33.6)


def test_default_power_counts_utilisation_and_host() -> None:
    energy = run_energy(get_accelerator("h100"), 1.0)
    assert energy.power_per_gpu_w == pytest.approx(700 * 0.76 * 1.82)
    assert energy.energy_kwh == pytest.approx(0.700 * 0.76 * 1.82 * 1.1)


def test_no_tdp_leaves_energy_out_with_a_note_unless_power_is_given() -> None:
    tpu = get_accelerator("tpu-v5p")
    assert tpu.tdp_w is None
    cost = run_cost(tpu, 4, HOUR, price_kind=None)
    assert cost.energy is None and cost.energy_kwh is None
    assert "tdp_w" in cost.notes[0]
    with pytest.raises(SpecError, match="power_per_gpu_w"):
        run_energy(tpu, 4.0)
    given = run_cost(tpu, 4, HOUR, price_kind=None, power_per_gpu_w=500, assumptions=AT_TDP)
    assert given.energy_kwh == pytest.approx(4 * 0.5 * 1.2)


def test_checkpoint_bytes_and_sharded_save_time() -> None:
    states = state_bytes(PrecisionMode.MIXED_BF16, Optimizer.ADAMW)  # bf16 2 + master 4 + Adam 8 (+ grads 2)
    assumptions = CostAssumptions(checkpoint_write_bytes_per_s_per_gpu=1e9)
    ckpt = checkpoint(params=7e9, gpus=8, states=states, assumptions=assumptions)
    assert ckpt.training_bytes == 7e9 * 14  # gradients are not saved
    assert ckpt.weights_bytes == 7e9 * 2  # bf16 export
    assert ckpt.write_bytes_per_gpu == 7e9 * 14 / 8
    assert ckpt.save_s == pytest.approx(12.25)
    one_writer = checkpoint(params=7e9, gpus=8, states=states, sharded=False, assumptions=assumptions)
    assert one_writer.save_s == pytest.approx(98.0)


def test_default_checkpoint_bandwidth_is_llama3_share() -> None:
    # 2 TB/s sustained over 16,384 GPUs
    assert CostAssumptions().checkpoint_write_bytes_per_s_per_gpu == pytest.approx(122.07e6, rel=1e-4)


def test_young_interval() -> None:
    assert young_interval_s(60, 4 * HOUR) == pytest.approx(math.sqrt(2 * 60 * 14_400))  # 1314.5 s


def test_daly_interval_by_hand_and_close_to_young_for_small_c_over_m() -> None:
    x = 60 / (2 * 14_400)
    expected = math.sqrt(2 * 60 * 14_400) * (1 + math.sqrt(x) / 3 + x / 9) - 60
    assert daly_interval_s(60, 4 * HOUR) == pytest.approx(expected)  # 1274.8 s
    for save_s, mtbi_s in [(60, 4 * HOUR), (10, 1e6), (1, 1e8)]:
        young, daly = young_interval_s(save_s, mtbi_s), daly_interval_s(save_s, mtbi_s)
        # Daly = Young - (2/3) C + ...: within sqrt(C / 2M) of Young
        assert abs(daly - young) / young < math.sqrt(save_s / (2 * mtbi_s))
    assert daly_interval_s(3 * HOUR, HOUR) == HOUR  # C >= 2M: Daly's cap


@pytest.mark.parametrize(("save_s", "mtbi_s", "restart_s"), [(60, 14_400, 0), (600, 3600, 300), (60, 1e6, 120)])
def test_daly_interval_minimises_expected_time(save_s: float, mtbi_s: float, restart_s: float) -> None:
    def overhead(tau: float) -> float:
        return expected_overhead_fraction(tau, save_s=save_s, mtbi_s=mtbi_s, restart_s=restart_s)

    daly = daly_interval_s(save_s, mtbi_s)
    grid = [daly * (0.5 + i / 2000) for i in range(2001)]
    best = min(grid, key=overhead)
    assert best == pytest.approx(daly, rel=2e-3)
    assert overhead(daly) <= overhead(young_interval_s(save_s, mtbi_s))


def test_first_order_overhead_matches_daly_model_for_small_c_over_m() -> None:
    stalls = interruptions(save_s=10, mtbi_s=1e6, restart_s=100)
    tau = stalls.interval_s
    assert stalls.first_order_overhead_fraction == pytest.approx(10 / tau + tau / 2e6 + 100 / 1e6)
    assert stalls.overhead_fraction == pytest.approx(stalls.first_order_overhead_fraction, rel=0.01)


def test_run_cost_with_interruptions_stretches_wall_time() -> None:
    states = state_bytes(PrecisionMode.MIXED_BF16, Optimizer.ADAMW)
    assumptions = CostAssumptions(checkpoint_write_bytes_per_s_per_gpu=1e9, restart_setup_s=200)
    ckpt = checkpoint(params=7e9, gpus=8, states=states, assumptions=assumptions)
    cost = run_cost(_priced(), 8, 100 * HOUR, usd_per_gpu_hour=2.0, checkpoint=ckpt, mtbi_s=10 * HOUR,
                    assumptions=assumptions)
    stalls = cost.interruptions
    assert stalls is not None
    assert stalls.restart_s == pytest.approx(200 + 12.25)  # relaunch + reading the checkpoint back
    assert cost.expected_wall_s == pytest.approx(100 * HOUR * (1 + stalls.overhead_fraction))
    assert cost.usd == pytest.approx(8 * cost.expected_wall_s / HOUR * 2.0)
    assert cost.to_dict()["checkpoint_interval_s"] == stalls.interval_s
    with pytest.raises(SpecError, match="checkpoint"):
        run_cost(_priced(), 8, HOUR, price_kind=None, mtbi_s=HOUR)


def test_hopeless_interruption_rate_is_an_error() -> None:
    with pytest.raises(SpecError, match="no time for work"):
        interruptions(save_s=100, mtbi_s=0.1, restart_s=100)


def test_job_mtbi_from_llama3_failures() -> None:
    # 419 unexpected interruptions in 54 days on 16,384 GPUs: one every 3.09 hours for the whole job
    assert job_mtbi_s(16_384) / HOUR == pytest.approx(54 * 24 / 419)


@pytest.mark.parametrize(("field", "value"), [
    ("power_fraction_of_tdp", 1.5), ("pue", 0.9), ("grid_kg_co2e_per_kwh", -1),
    ("checkpoint_write_bytes_per_s_per_gpu", 0),
])
def test_bad_assumptions_are_rejected(field: str, value: float) -> None:
    with pytest.raises(SpecError, match=field):
        CostAssumptions(**{field: value})
