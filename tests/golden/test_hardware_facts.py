"""The hardware catalog against published figures (cited in data/hardware_facts.toml) and against physics.

Dense peaks must match datasheets and stay clearly below the 2:4-sparsity and FP16-accumulate headlines
that get copied by mistake; every entry must be sourced; memory is binary-sized; units must not be mixed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from suanli.spec.hardware import (
    FORMATS,
    Accelerator,
    get_accelerator,
    get_interconnect,
    load_accelerators,
    load_interconnects,
)
from suanli.units import GB, TERA, GiB

DATA = tomllib.loads((Path(__file__).parent / "data" / "hardware_facts.toml").read_text(encoding="utf-8"))
ACCELERATORS = load_accelerators()


def catalog_value(acc: Accelerator, field: str) -> float:
    """A catalog field in the units the data file states it in."""
    if field.startswith("dense_tflops."):
        return acc.peak_flops(field.removeprefix("dense_tflops.")) / TERA
    value = {
        "memory_gb": acc.memory_gb,
        "memory_gib": acc.memory_bytes / GiB,
        "memory_bandwidth_gb_s": acc.memory_bandwidth_bytes_per_s / GB,
        "tdp_w": acc.tdp_w,
    }[field]
    assert value is not None, f"{acc.key} has no {field}"
    return float(value)


@pytest.mark.parametrize("fact", DATA["fact"], ids=lambda f: f"{f['accelerator']}:{f['field']}")
def test_published_fact(fact: dict[str, Any]) -> None:
    acc = get_accelerator(fact["accelerator"])
    assert catalog_value(acc, fact["field"]) == pytest.approx(fact["value"], rel=fact["rel_tol"]), fact["source"]


@pytest.mark.parametrize("headline", DATA["headline"], ids=lambda h: f"{h['accelerator']}:{h['format']}")
def test_dense_peak_is_not_an_inflated_headline(headline: dict[str, Any]) -> None:
    dense = get_accelerator(headline["accelerator"]).peak_flops(headline["format"]) / TERA
    assert dense <= 0.75 * headline["tflops"], f"{dense} looks like the headline: {headline['why']}"


@pytest.mark.parametrize("fact", DATA["interconnect_fact"], ids=lambda f: f["interconnect"])
def test_interconnect_advertised_bandwidth(fact: dict[str, Any]) -> None:
    per_direction = get_interconnect(fact["interconnect"]).bandwidth_bytes_per_s / GB
    assert 2 * per_direction == pytest.approx(fact["both_directions_gb_s"], rel=0.02), fact["source"]


def test_catalog_covers_the_required_parts() -> None:
    required = ["v100", "t4", "a10", "a10g", "a100-40gb", "a100-80gb", "a100-pcie-40gb", "a100-pcie-80gb",
                "a800", "h100", "h100-pcie", "h100-nvl", "h800", "h20", "h200", "b200", "gb200", "b300", "l4",
                "l40s", "rtx-3090", "rtx-4090", "rtx-5090", "rtx-6000-ada", "jetson-agx-orin", "mi250x",
                "mi300x", "mi325x", "mi355x", "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e", "gaudi2", "gaudi3",
                "ascend-910b", "m2-ultra", "m3-max", "m4-max", "xeon-platinum-8480+", "epyc-9654", "mlu370-x8",
                "groq"]
    assert len({get_accelerator(name).key for name in required}) == len(required)
    assert len(ACCELERATORS) >= 35
    assert {acc.kind for acc in ACCELERATORS} == {"gpu", "tpu", "npu", "lpu", "cpu", "soc"}


@pytest.mark.parametrize("acc", ACCELERATORS, ids=lambda a: a.key)
def test_every_entry_is_sourced(acc: Accelerator) -> None:
    assert acc.sources and all(len(source) > 10 for source in acc.sources)
    assert all(price.source and price.date for price in acc.prices)


@pytest.mark.parametrize("link", load_interconnects(), ids=lambda link: link.key)
def test_every_interconnect_is_sourced(link: Any) -> None:
    assert link.sources and all(len(source) > 10 for source in link.sources)


@pytest.mark.parametrize("acc", ACCELERATORS, ids=lambda a: a.key)
def test_format_ordering_is_physical(acc: Accelerator) -> None:
    """Narrower formats never run slower on the same tensor unit: fp64 <= fp32, tf32 <= bf16 <= fp8 <= fp4,
    bf16 <= int8; and fp64 tensor cores beat fp64 vector units."""
    flops = {fmt: acc.peak_flops_per_s[fmt] for fmt in acc.formats}
    for slow, fast in [("fp64", "fp32"), ("tf32", "bf16"), ("bf16", "fp8"), ("fp8", "fp4"), ("bf16", "int8"),
                       ("fp64", "fp64_tensor"), ("int8", "int4")]:
        if slow in flops and fast in flops:
            assert flops[slow] <= flops[fast], f"{acc.key}: {slow} {flops[slow]:.4g} > {fast} {flops[fast]:.4g}"


@pytest.mark.parametrize("acc", ACCELERATORS, ids=lambda a: a.key)
def test_units_are_not_mixed(acc: Accelerator) -> None:
    """Catch TFLOPS-vs-GFLOPS or GB-vs-MB slips: every figure must land in a physically plausible range."""
    if acc.on_chip_memory_only:  # SRAM-only (Groq): a few hundred MB per chip, tens of TB/s on die
        assert 0.1 * GiB <= acc.memory_bytes <= 2 * GiB
        assert 1_000 * GB <= acc.memory_bandwidth_bytes_per_s <= 200_000 * GB
        return
    assert 50 * GB <= acc.memory_bandwidth_bytes_per_s <= 20_000 * GB
    assert 8 * GiB <= acc.memory_bytes <= 8192 * GiB
    assert acc.tdp_w is None or 10 <= acc.tdp_w <= 2000
    assert all(0.1 * TERA <= flops <= 30_000 * TERA for flops in acc.peak_flops_per_s.values())
    for fmt in acc.formats:  # fp64 on export or inference parts can sit far below 1 FLOP/byte
        assert 0.1 <= acc.ridge_point_flops_per_byte(fmt) <= 2000, (acc.key, fmt)
    for fmt in {"bf16", "fp16"} & set(acc.formats):  # the formats training and serving run in
        assert 10 <= acc.ridge_point_flops_per_byte(fmt) <= 1000, (acc.key, fmt)


@pytest.mark.parametrize("acc", ACCELERATORS, ids=lambda a: a.key)
def test_memory_is_binary_sized(acc: Accelerator) -> None:
    """DRAM comes in powers of two: the bytes are at least the decimal label, and nvidia-smi's total is only
    the driver's reservation (well under 2%) short of them."""
    assert acc.memory_bytes >= acc.memory_gb * GB
    if acc.driver_memory_bytes is not None:
        assert 0.98 * acc.memory_bytes <= acc.driver_memory_bytes <= acc.memory_bytes


def test_known_driver_readings() -> None:
    assert get_accelerator("h100").driver_memory_bytes == 81559 * 2**20
    assert get_accelerator("h200").driver_memory_bytes == 143771 * 2**20


@pytest.mark.parametrize("acc", [a for a in ACCELERATORS if a.scale_up or a.host_link], ids=lambda a: a.key)
def test_links_are_of_the_right_kind(acc: Accelerator) -> None:
    if acc.scale_up is not None:
        assert acc.scale_up.interconnect.kind == "scale-up"
        if acc.scale_up.interconnect.bandwidth_scope == "per-gpu":
            assert acc.scale_up.bandwidth_bytes_per_s <= acc.scale_up.interconnect.bandwidth_bytes_per_s
    if acc.host_link is not None:
        assert acc.host_link.kind == "host"


def test_pcie_doubles_per_generation() -> None:
    gens = [get_interconnect(f"pcie{n}-x16").bandwidth_bytes_per_s for n in (3, 4, 5)]
    assert gens[1] / gens[0] == pytest.approx(2, rel=0.01)
    assert gens[2] / gens[1] == pytest.approx(2, rel=0.01)


def test_same_silicon_same_peaks() -> None:
    """Parts that differ only in memory or links carry identical compute."""
    for group in [("a100-40gb", "a100", "a100-pcie-40gb", "a100-pcie", "a800"), ("h100", "h200"),
                  ("mi300x", "mi325x")]:
        peaks = {name: dict(get_accelerator(name).peak_flops_per_s) for name in group}
        assert len({tuple(sorted(p.items())) for p in peaks.values()}) == 1, peaks


def test_estimated_values_are_marked_and_explained() -> None:
    """Every value derived rather than read is listed in ``estimated``, and the entry says how in its notes."""
    for acc in ACCELERATORS:
        if acc.estimated:
            assert acc.notes, f"{acc.key} marks {sorted(acc.estimated)} as estimated without notes"
    assert "dense_tflops.bf16" in get_accelerator("rtx-5090").estimated
    assert "dense_tflops.fp16" in get_accelerator("ascend-910b").estimated


def test_formats_vocabulary() -> None:
    assert FORMATS == ("fp64", "fp64_tensor", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")
