"""Our model states against DeepSpeed's memory estimators and their published tables.

DeepSpeed's ``estimate_zero{2,3}_model_states_mem_needs`` are re-derived here from the facts in
``data/deepspeed_estimator.toml`` (sources there). Each printed row must come out digit for digit, and each of
DeepSpeed's figures must equal ours plus or minus the named terms in which the two count differently.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from suanli.core.model_states import ShardedStates, shard_states, state_bytes
from suanli.spec.layout import Layout, Offload
from suanli.spec.training import Optimizer, PrecisionMode

DATA = tomllib.loads((Path(__file__).parent / "data" / "deepspeed_estimator.toml").read_text())
GIB = 2**30
BUFFER_FACTOR = 1.5  # DeepSpeed's additional_buffer_factor default
BYTES = 2  # DeepSpeed truncates each figure to int; we do not


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One printed row: a setup, DeepSpeed's published figures (None where only computed) and our layout."""

    model: str
    params: float
    largest_layer: float
    gpus_per_node: int
    nodes: int
    stage: int
    offload_optimizer: bool
    offload_params: bool
    zero_init: bool
    zero2_formula: str
    cpu_gib: float | None
    gpu_gib: float | None

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    def __str__(self) -> str:
        setup = f"{self.model}-z{self.stage}-{self.gpus_per_node}x{self.nodes}-opt{int(self.offload_optimizer)}"
        if self.stage == 2:
            return f"{setup}-{self.zero2_formula}"
        return f"{setup}-par{int(self.offload_params)}-init{int(self.zero_init)}"


def _rows(stage: int) -> list[Row]:
    rows = []
    for table in DATA[f"zero{stage}"]:
        model = DATA["model"][table["model"]]
        for row in table["rows"]:
            rows.append(Row(model=table["model"], params=model["total_params"],
                            largest_layer=model["largest_layer_params"], gpus_per_node=table["gpus_per_node"],
                            nodes=table["nodes"], stage=stage, offload_optimizer=row["offload_optimizer"] == "cpu",
                            offload_params=row.get("offload_params") == "cpu", zero_init=row.get("zero_init", True),
                            zero2_formula=table.get("formula", ""), cpu_gib=row.get("cpu_gib"),
                            gpu_gib=row.get("gpu_gib")))
    return rows


ROWS = _rows(2) + _rows(3)


# ---- DeepSpeed's formulas, from the facts in the data file --------------------------------------------------------


def deepspeed_zero2(r: Row) -> tuple[int, int]:
    """(CPU bytes per node, GPU bytes per GPU) of ``estimate_zero2_model_states_mem_needs``."""
    p, n = r.params, r.gpus
    if r.offload_optimizer:
        return int(p * max(4 * n, 16) * BUFFER_FACTOR), int(2 * p)
    gpu = 4 * p + int(16 * p / n) if r.zero2_formula == "before-5099" else 2 * p + int(18 * p / n)
    return int(p * 4 * r.gpus_per_node * BUFFER_FACTOR), int(gpu)


def deepspeed_zero3(r: Row) -> tuple[int, int]:
    """(CPU bytes per node, GPU bytes per GPU) of ``estimate_zero3_model_states_mem_needs``."""
    p, layer, g, per_node = r.params, r.largest_layer, r.gpus_per_node, 1 / r.nodes
    gather = 4 * layer
    if not r.offload_optimizer:
        cpu = (layer if r.zero_init else p) * 4 * g * BUFFER_FACTOR
        return int(cpu), int(gather + int(18 * p / r.gpus))
    host = 18 if r.offload_params else 16
    cpu = p * (host * per_node if r.zero_init else max(4 * g, host * per_node)) * BUFFER_FACTOR
    return int(cpu), int(gather if r.offload_params else gather + int(2 * p / r.gpus))


def deepspeed(r: Row) -> tuple[int, int]:
    return deepspeed_zero2(r) if r.stage == 2 else deepspeed_zero3(r)


# ---- ours -------------------------------------------------------------------------------------------------------


def ours(r: Row, *, stage: int | None = None) -> ShardedStates:
    layout = Layout(dp=r.gpus, zero=r.stage if stage is None else stage,
                    offload_optimizer=Offload.CPU if r.offload_optimizer else Offload.NONE,
                    offload_params=Offload.CPU if r.offload_params else Offload.NONE)
    return shard_states(trainable=r.params, frozen_weight_bytes=0.0,
                        per_param=state_bytes(PrecisionMode.MIXED_FP16, Optimizer.ADAMW), layout=layout)


def on_gpu(s: ShardedStates) -> float:
    return s.weights + s.gradients + s.master_weights + s.optimizer


# ---- the checks -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("row", [r for r in ROWS if r.gpu_gib is not None], ids=str)
def test_formula_prints_the_published_row(row: Row) -> None:
    cpu, gpu = deepspeed(row)
    assert (f"{cpu / GIB:.2f}", f"{gpu / GIB:.2f}") == (f"{row.cpu_gib:.2f}", f"{row.gpu_gib:.2f}")


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_gpu_figure_against_ours(row: Row) -> None:
    _, theirs = deepspeed(row)
    p, n, mine = row.params, row.gpus, on_gpu(ours(row))
    if row.stage == 3:  # the gathered largest layer; no offload: the gradient partition counted in fp32
        fp32_grads = 0.0 if row.offload_optimizer else 2 * p / n
        assert theirs == pytest.approx(mine + 4 * row.largest_layer + fp32_grads, abs=BYTES)
    elif row.offload_optimizer:
        assert theirs == pytest.approx(mine, abs=BYTES) == 2 * p
    elif row.zero2_formula == "before-5099":  # 16-bit gradients unpartitioned, as at ZeRO-1, + fp32 partition
        assert theirs == pytest.approx(on_gpu(ours(row, stage=1)) + 4 * p / n, abs=BYTES)
    else:  # the fp32 copy of the gradient partition made at the step
        assert theirs == pytest.approx(mine + 4 * p / n, abs=BYTES)


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_cpu_figure_against_our_host_bytes(row: Row) -> None:
    theirs, _ = deepspeed(row)
    p, g, host = row.params, row.gpus_per_node, ours(row).offloaded_to_host
    if row.stage == 2 and row.offload_optimizer:  # we also count ZeRO-2's 16-bit host copy of the partition
        staging = 2 * p
        assert theirs == pytest.approx(BUFFER_FACTOR * max(4 * p * row.gpus, row.gpus * host - staging), abs=BYTES)
        return
    if row.stage == 2:  # no offload: only the fp32 model each process builds at load
        assert host == 0
        assert theirs == pytest.approx(BUFFER_FACTOR * 4 * p * g, abs=BYTES)
        return
    load = 4 * g * (p if not row.zero_init else 0 if row.offload_optimizer else row.largest_layer)
    assert theirs == pytest.approx(BUFFER_FACTOR * max(load, g * host), abs=BYTES)


def test_zero3_offload_host_is_deepspeeds_18_and_16_bytes() -> None:
    """Per GPU our host holds 18·P/N with parameter offload (16-bit weights 2, fp32 grads 4, master 4, Adam 8) and
    16·P/N without: DeepSpeed's ZeRO-3 multipliers, with nothing left on the GPU but the weight shard."""
    row = next(r for r in ROWS if r.stage == 3 and r.offload_optimizer)
    for offload_params, expected in ((True, 18), (False, 16)):
        states = ours(replace(row, offload_params=offload_params))
        assert states.offloaded_to_host == pytest.approx(expected * row.params / row.gpus)
        assert states.gradients == states.master_weights == states.optimizer == 0


@pytest.mark.parametrize(("table", "case"), [
    pytest.param(t, r, id=f"{t['model']}-{r['gpu_mib']}MB") for t in DATA["zero3_mib"] for r in t["rows"]])
def test_memory_rst_hand_calculation(table: dict[str, Any], case: dict[str, Any]) -> None:
    model = DATA["model"][table["model"]]
    row = Row(model=table["model"], params=model["total_params"], largest_layer=model["largest_layer_params"],
              gpus_per_node=table["gpus_per_node"], nodes=table["nodes"], stage=3,
              offload_optimizer=case["offload_optimizer"] == "cpu", offload_params=case["offload_params"] == "cpu",
              zero_init=True, zero2_formula="", cpu_gib=None, gpu_gib=None)
    _, gpu = deepspeed_zero3(row)
    assert gpu >> 20 == case["gpu_mib"]

