"""Published GPU-hours, dollars, energy, CO2 and checkpoint sizes, reproduced from the authors' stated inputs.

Sources and figures are in ``data/published_cost.toml``: Llama 2 Table 2 and LLaMA Table 15 (Touvron et al.
2023), Patterson et al. 2021 Table 4, DeepSeek-V3 Table 1, and the BLOOM model card's checkpoint sizes.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from suanli.core.cost import checkpoint, co2_kg, energy_kwh, gpu_hours, run_cost, system_power_per_gpu_w
from suanli.core.model_states import state_bytes
from suanli.spec.hardware import get_accelerator
from suanli.spec.training import Optimizer, PrecisionMode

DATA = tomllib.loads((Path(__file__).parent / "data" / "published_cost.toml").read_text())
REL = DATA["tolerance_rel"]
SECONDS_PER_DAY = 86_400


def _meta_tco2(gpu_h: float, power_w: float, table: dict[str, Any]) -> tuple[float, float]:
    """Meta's accounting: GPU-h x TDP x PUE, no host share, no utilisation below TDP. Returns (MWh, tCO2e)."""
    power = system_power_per_gpu_w(power_w, power_fraction_of_tdp=1.0, host_overhead_fraction=0.0)
    kwh = energy_kwh(gpu_h, power_per_gpu_w=power, pue=table["pue"])
    return kwh / 1e3, co2_kg(kwh, grid_kg_co2e_per_kwh=table["grid_kg_co2e_per_kwh"]) / 1e3


@pytest.mark.parametrize("case", DATA["llama2"]["model"], ids=lambda c: c["name"])
def test_llama2_table2_per_model(case: dict[str, Any]) -> None:
    table = DATA["llama2"]
    implied_kg_per_kwh = case["tco2eq"] * 1e3 / (case["gpu_hours"] * case["power_w"] / 1e3)
    assert implied_kg_per_kwh == pytest.approx(table["pue"] * table["grid_kg_co2e_per_kwh"], rel=REL)  # 0.4235
    _, tco2 = _meta_tco2(case["gpu_hours"], case["power_w"], table)
    assert tco2 == pytest.approx(case["tco2eq"], rel=REL)


def test_llama2_total_539_tco2eq() -> None:
    table = DATA["llama2"]
    assert sum(m["gpu_hours"] for m in table["model"]) == table["total_gpu_hours"]
    total = sum(_meta_tco2(m["gpu_hours"], m["power_w"], table)[1] for m in table["model"])
    assert total == pytest.approx(table["total_tco2eq"], rel=REL)


@pytest.mark.parametrize("case", DATA["llama1"]["model"], ids=lambda c: c["name"])
def test_llama1_table15(case: dict[str, Any]) -> None:
    table = DATA["llama1"]
    mwh, tco2 = _meta_tco2(case["gpu_hours"], table["power_w"], table)
    assert mwh == pytest.approx(case["mwh"], rel=REL)
    assert tco2 == pytest.approx(case["tco2eq"], rel=REL)


@pytest.mark.parametrize("case", DATA["patterson"]["model"], ids=lambda c: c["name"])
def test_patterson_2021_table4(case: dict[str, Any]) -> None:
    hours = gpu_hours(case["chips"], case["days"] * SECONDS_PER_DAY)
    kwh = energy_kwh(hours, power_per_gpu_w=case["power_w"], pue=case["pue"])  # measured system power per chip
    assert kwh / 1e3 == pytest.approx(case["mwh"], rel=REL)
    assert co2_kg(kwh, grid_kg_co2e_per_kwh=case["grid_kg_co2e_per_kwh"]) / 1e3 == pytest.approx(case["tco2e"],
                                                                                                    rel=REL)


@pytest.mark.parametrize("stage", DATA["deepseek_v3"]["stage"], ids=lambda s: s["name"])
def test_deepseek_v3_table1_dollars(stage: dict[str, Any]) -> None:
    table = DATA["deepseek_v3"]
    wall_s = stage["gpu_hours"] * 3600 / table["gpus"]
    cost = run_cost(get_accelerator(table["accelerator"]), table["gpus"], wall_s,
                    usd_per_gpu_hour=table["usd_per_gpu_hour"])
    assert cost.gpu_hours == pytest.approx(stage["gpu_hours"], rel=REL)
    assert cost.usd == pytest.approx(stage["usd"], rel=REL)


def test_bloom_checkpoint_sizes() -> None:
    case = DATA["bloom_checkpoint"]
    states = state_bytes(PrecisionMode.MIXED_BF16, Optimizer.ADAMW)
    training = checkpoint(params=case["params"] + case["embedding_params"], gpus=case["gpus"], states=states)
    assert training.training_bytes / 2**40 == pytest.approx(case["training_tib"], rel=REL)
    release = checkpoint(params=case["params"], gpus=case["gpus"], states=states)
    assert release.weights_bytes / 2**30 == pytest.approx(case["weights_gib"], rel=REL)
