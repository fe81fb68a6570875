"""suanli.spec.hardware: lookup, aliases, validation, derived figures and the catalog loader."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import FrozenInstanceError, replace
from typing import Any

import pytest

from suanli.errors import SpecError, UnknownAccelerator
from suanli.i18n import error_text
from suanli.spec import hardware
from suanli.spec.hardware import (
    Accelerator,
    Interconnect,
    Link,
    Price,
    get_accelerator,
    get_interconnect,
    load_accelerators,
)
from suanli.units import GB, TERA, GiB

NVLINK = Interconnect(key="toy-link", name="toy", kind="scale-up", bandwidth_bytes_per_s=100 * GB,
                      bandwidth_scope="per-gpu", latency_s=1e-6, latency_basis="assumption", sources=("toy",))


def toy(**overrides: Any) -> Accelerator:
    """A made-up part with round numbers: 100 TFLOPS bf16 over 1 TB/s is a ridge point of 100 FLOP/byte."""
    fields: dict[str, Any] = dict(
        key="toy-1", name="Toy 1", vendor="Acme", kind="gpu", release_year=2024, memory_gb=16,
        memory_bytes=16 * GiB, memory_type="HBM", memory_bandwidth_bytes_per_s=1000 * GB,
        peak_flops_per_s={"bf16": 100 * TERA, "fp32": 10 * TERA}, tdp_w=500, confidence="high",
        sources=("made up for a unit test",))
    return Accelerator(**(fields | overrides))


# ---------------------------------------------------------------- lookup


@pytest.mark.parametrize(("name", "key"), [
    ("h100", "h100-sxm-80gb"), ("H100", "h100-sxm-80gb"), ("h100-sxm", "h100-sxm-80gb"),
    ("h100-80gb", "h100-sxm-80gb"), ("h100_sxm_80gb", "h100-sxm-80gb"), ("NVIDIA H100", "h100-sxm-80gb"),
    ("nvidia_h100", "h100-sxm-80gb"), ("h200", "h200-sxm-141gb"), ("a100", "a100-sxm-80gb"),
    ("a100-80gb", "a100-sxm-80gb"), ("a100-40gb", "a100-sxm-40gb"), ("rtx-4090", "rtx-4090-24gb"),
    ("4090", "rtx-4090-24gb"), ("RTX 4090", "rtx-4090-24gb"), ("NVIDIA GeForce RTX 4090", "rtx-4090-24gb"),
    ("mi300x", "mi300x-192gb"), ("AMD MI300X", "mi300x-192gb"), ("tpu-v5p", "tpu-v5p"),
    ("TPU v5p", "tpu-v5p"), ("gb200", "gb200-186gb"), ("Xeon Platinum 8480+", "xeon-platinum-8480+"),
    ("  gaudi3 ", "gaudi3-128gb"), ("Apple M4 Max", "m4-max-128gb"),
])
def test_lookup_by_key_alias_case_and_separators(name: str, key: str) -> None:
    assert get_accelerator(name).key == key


def test_every_key_and_alias_resolves_to_its_own_entry() -> None:
    for acc in load_accelerators():
        for name in (acc.key, *acc.aliases):
            assert get_accelerator(name) is acc


def test_aliases_are_unique_across_the_catalog() -> None:
    names = [name for acc in load_accelerators() for name in (acc.key, *acc.aliases)]
    assert len(names) == len(set(names))
    assert all(name == name.lower() and " " not in name for name in names)


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownAccelerator, match="did you mean h100"):
        get_accelerator("h10")


def test_unknown_name_with_nothing_close_points_to_the_catalog() -> None:
    with pytest.raises(UnknownAccelerator) as raised:
        get_accelerator("quantum-annealer-9000")
    assert str(raised.value) == "unknown accelerator 'quantum-annealer-9000'; run `suanli gpus` for the catalog"
    assert error_text(raised.value.key, raised.value.fields, "en") == str(raised.value)  # the catalogue's English


def test_unknown_interconnect_suggests() -> None:
    with pytest.raises(LookupError, match="did you mean nvlink4"):
        get_interconnect("nvlnk4")


# ---------------------------------------------------------------- peak_flops and derived figures


def test_peak_flops_names_supported_formats_when_missing() -> None:
    with pytest.raises(SpecError, match=r"V100 SXM2 32GB has no bf16 .* formats it supports: fp64, fp32, fp16$"):
        get_accelerator("v100").peak_flops("bf16")


def test_peak_flops_rejects_unknown_format_with_suggestion() -> None:
    with pytest.raises(SpecError, match="unknown number format 'bf61'; did you mean bf16"):
        toy().peak_flops("bf61")


def test_peak_flops_converts_tflops_at_load() -> None:
    assert get_accelerator("a100").peak_flops("bf16") == 312e12
    assert get_accelerator("h100").memory_bandwidth_bytes_per_s == 3.35e12
    assert get_accelerator("h100").memory_bytes == 80 * 2**30


def test_ridge_point_watt_and_dollar() -> None:
    acc = toy()
    assert acc.ridge_point_flops_per_byte("bf16") == pytest.approx(100.0)
    assert acc.flops_per_watt("bf16") == pytest.approx(100e12 / 500)
    assert acc.flop_per_usd("bf16", usd_per_hour=2.0) == pytest.approx(100e12 * 3600 / 2.0)


def test_flops_per_watt_without_tdp_says_so() -> None:
    with pytest.raises(SpecError, match="no published power limit"):
        toy(tdp_w=None).flops_per_watt("bf16")


def test_flop_per_usd_rejects_free_hardware() -> None:
    with pytest.raises(SpecError, match="usd_per_hour must be positive, got 0"):
        toy().flop_per_usd("bf16", usd_per_hour=0)


def test_formats_in_canonical_order() -> None:
    assert toy().formats == ("fp32", "bf16")


def test_specs_are_frozen_and_hashable() -> None:
    acc = toy()
    with pytest.raises(FrozenInstanceError):
        acc.tdp_w = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        acc.peak_flops_per_s["bf16"] = 1.0  # type: ignore[index]
    assert hash(acc) == hash(toy()) and acc == toy()
    assert {get_accelerator("h100"): 1}[get_accelerator("H100")] == 1


def test_specs_survive_asdict_pickle_and_deepcopy() -> None:
    """Reports serialise specs; the read-only FLOP table must not get in the way."""
    acc = get_accelerator("h100")
    as_dict = dataclasses.asdict(acc)
    assert as_dict["peak_flops_per_s"]["bf16"] == 989.4e12 and as_dict["scale_up"]["domain_size"] == 8
    json.dumps(as_dict)
    assert pickle.loads(pickle.dumps(acc)) == acc == copy.deepcopy(acc)
    with pytest.raises(TypeError, match="read-only"):
        acc.peak_flops_per_s.update(bf16=1.0)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- validation at construction


@pytest.mark.parametrize(("overrides", "message"), [
    ({"memory_bytes": -1}, r"memory_bytes must be positive, got -1"),
    ({"memory_bandwidth_bytes_per_s": 0.0}, r"memory_bandwidth_bytes_per_s must be positive, got 0"),
    ({"tdp_w": -300}, r"tdp_w must be positive, got -300"),
    ({"peak_flops_per_s": {"bfloat16": 1e12}}, r"unknown number format 'bfloat16'.*known: fp64"),
    ({"peak_flops_per_s": {"bf16": -1e12}}, r"toy-1: dense bf16 TFLOPS must be positive, got -1.0"),
    ({"sources": ()}, r"needs at least one non-empty source"),
    ({"sources": ("  ",)}, r"needs at least one non-empty source"),
    ({"kind": "fpga"}, r"kind 'fpga' is not one of gpu, tpu, npu, lpu, cpu, soc"),
    ({"key": "H100"}, r"'H100' must use lowercase"),
    ({"aliases": ("Big GPU",)}, r"'Big GPU' must use lowercase"),
    ({"estimated": ("dense_tflops.fp8",)}, r"'estimated' lists dense_tflops.fp8, which the entry"),
    ({"driver_memory_bytes": 17 * GiB, "driver_memory_source": "x"}, r"at most memory_bytes"),
    ({"driver_memory_bytes": 15 * GiB}, r"driver_memory_bytes and driver_memory_source go together"),
])
def test_accelerator_validation_names_the_numbers(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        toy(**overrides)


def test_estimated_may_name_fields_the_entry_sets() -> None:
    assert toy(estimated=("dense_tflops.bf16", "memory_bandwidth_gb_s", "tdp_w")).estimated


def test_link_validation() -> None:
    link = Link(interconnect=NVLINK, bandwidth_bytes_per_s=100 * GB, peer_bandwidth_bytes_per_s=100 * GB,
                domain_size=8, topology="switch")
    with pytest.raises(SpecError, match="peer bandwidth 2e\\+11 B/s exceeds the total to all peers 1e\\+11"):
        replace(link, peer_bandwidth_bytes_per_s=200 * GB)
    with pytest.raises(SpecError, match="domain_size 1 is below 2"):
        replace(link, domain_size=1)
    with pytest.raises(SpecError, match="topology 'ring' is not one of"):
        replace(link, topology="ring")  # type: ignore[arg-type]


def test_interconnect_validation() -> None:
    with pytest.raises(SpecError, match="bandwidth_bytes_per_s must be positive, got -1"):
        replace(NVLINK, bandwidth_bytes_per_s=-1)
    with pytest.raises(SpecError, match="latency_basis 'guess' is not one of source, assumption"):
        replace(NVLINK, latency_basis="guess")  # type: ignore[arg-type]


def test_price_validation() -> None:
    price = Price(usd_per_hour=2.0, kind="on-demand", provider="Acme", date="2026-05", source="acme.example")
    with pytest.raises(SpecError, match="date 'May 2026' must be YYYY-MM"):
        replace(price, date="May 2026")
    with pytest.raises(SpecError, match="kind 'hourly' is not one of on-demand, spot, reserved"):
        replace(price, kind="hourly")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="usd_per_hour must be positive, got -2"):
        replace(price, usd_per_hour=-2.0)


# ---------------------------------------------------------------- the loader, on a fake catalog


def toml_entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = dict(
        key="fake-1", name="Fake 1", vendor="Acme", kind="gpu", aliases=["fake"], release_year=2024, memory_gb=80,
        memory_gib=80, memory_type="HBM3", memory_bandwidth_gb_s=3350, dense_tflops={"bf16": 989.4},
        host_link="pcie5-x16", confidence="high", sources=["made up"],
        scale_up={"interconnect": "nvlink4", "bandwidth_gb_s_per_direction": 450, "domain_size": 8,
                  "topology": "switch"})
    return entry | overrides


@pytest.fixture
def fake_catalog(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Replace the accelerator file with a list the test fills; interconnects stay the real ones."""
    entries: list[dict[str, Any]] = []
    real = hardware._read_catalog

    def read(filename: str, table: str) -> list[dict[str, Any]]:
        return entries if table == "accelerator" else real(filename, table)

    monkeypatch.setattr(hardware, "_read_catalog", read)
    load_accelerators.cache_clear()
    hardware._accelerator_index.cache_clear()
    yield entries
    load_accelerators.cache_clear()
    hardware._accelerator_index.cache_clear()


def test_loader_converts_units(fake_catalog: list[dict[str, Any]]) -> None:
    fake_catalog.append(toml_entry())
    acc = get_accelerator("FAKE")
    assert acc.memory_bytes == 80 * 2**30
    assert acc.memory_bandwidth_bytes_per_s == 3350e9
    assert acc.peak_flops("bf16") == pytest.approx(989.4e12)
    assert acc.scale_up is not None and acc.scale_up.peer_bandwidth_bytes_per_s == 450e9
    assert acc.host_link is get_interconnect("pcie5-x16")


@pytest.mark.parametrize(("entry", "message"), [
    (toml_entry(tdp_W=700), r"entry 'fake-1': .*unexpected keyword argument 'tdp_W'"),
    ({k: v for k, v in toml_entry().items() if k != "memory_gib"}, r"entry 'fake-1': missing field 'memory_gib'"),
    (toml_entry(host_link="pcie7-x16"), r"entry 'fake-1': unknown interconnect 'pcie7-x16'; did you mean"),
    (toml_entry(dense_tflops={"bf16": 989.4, "fp6": 1979}), r"entry 'fake-1': .*unknown number format 'fp6'"),
    (toml_entry(sources=[]), r"entry 'fake-1': .*needs at least one non-empty source"),
    (toml_entry(prices=[{"usd_per_hour": 2, "kind": "on-demand", "provider": "x", "date": "2026"}]),
     r"entry 'fake-1': .*source"),
])
def test_loader_errors_name_the_entry(fake_catalog: list[dict[str, Any]], entry: dict[str, Any],
                                      message: str) -> None:
    fake_catalog.append(entry)
    with pytest.raises(SpecError, match=message):
        load_accelerators()


def test_loader_rejects_duplicate_aliases(fake_catalog: list[dict[str, Any]]) -> None:
    fake_catalog.extend([toml_entry(), toml_entry(key="fake-2", aliases=["fake"])])
    with pytest.raises(SpecError, match="'fake' is used twice \\(fake-1 and fake-2\\)"):
        load_accelerators()


def test_loader_rejects_alias_equal_to_another_key(fake_catalog: list[dict[str, Any]]) -> None:
    fake_catalog.extend([toml_entry(), toml_entry(key="fake-2", aliases=["fake-1"])])
    with pytest.raises(SpecError, match="'fake-1' is used twice"):
        load_accelerators()


# ---------------------------------------------------------------- import cost


def test_import_is_cheap() -> None:
    """Importing the spec must not pull numerical or ML libraries, nor read the catalog."""
    code = ("import sys, suanli.spec.hardware as h; "
            "print(sorted(m for m in ('numpy', 'torch', 'pandas', 'yaml') if m in sys.modules), "
            "h.load_accelerators.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "0"]
