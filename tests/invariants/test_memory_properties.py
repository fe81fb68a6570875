"""Properties that must hold for any layout: more sharding never costs memory, nothing is negative,
and ``fits`` means what it says."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from suanli.core.memory import TrainingMemory, training_memory
from suanli.errors import LayoutError
from suanli.spec.layout import Layout, Recompute
from suanli.spec.resolve import load_model
from suanli.spec.training import Method, TrainingJob

MODELS = {name: load_model(name) for name in ("llama-3.1-8b", "qwen2.5-7b", "mixtral-8x7b", "gemma-2-9b")}
CAPACITY = 80 * 2**30

layouts = st.builds(
    Layout,
    tp=st.sampled_from([1, 2, 4]),
    pp=st.sampled_from([1, 2, 4]),
    dp=st.sampled_from([1, 2, 4, 8]),
    zero=st.integers(0, 3),
    micro_batch=st.integers(1, 4),
    recompute=st.sampled_from(list(Recompute)),
)
jobs = st.builds(TrainingJob, seq=st.sampled_from([512, 2048, 4096]),
                 method=st.sampled_from([Method.FULL, Method.LORA, Method.QLORA]))
model_names = st.sampled_from(sorted(MODELS))


def memory(name: str, job: TrainingJob, layout: Layout) -> TrainingMemory:
    """Evaluate, skipping layouts the model cannot take (those exit 2 in the CLI, tested elsewhere)."""
    try:
        layout.check(MODELS[name])
    except LayoutError:
        assume(False)
    return training_memory(MODELS[name], job, layout, capacity_bytes=CAPACITY)


@settings(max_examples=60, deadline=None)
@given(model_names, jobs, layouts)
def test_nothing_negative_and_fits_means_fits(name: str, job: TrainingJob, layout: Layout) -> None:
    m = memory(name, job, layout)
    for field in ("weights_bytes", "gradients_bytes", "master_weights_bytes", "optimizer_bytes",
                  "activations_bytes", "comm_buffers_bytes", "fragmentation_bytes", "host_bytes"):
        assert getattr(m, field) >= 0, field
    assert m.fits == (m.total_bytes <= m.capacity_bytes)


@settings(max_examples=60, deadline=None)
@given(model_names, jobs, layouts)
def test_higher_zero_stage_never_costs_more(name: str, job: TrainingJob, layout: Layout) -> None:
    # with one data-parallel rank a ZeRO stage shards nothing (and DeepSpeed still allocates its buckets)
    layout = replace(layout, dp=max(layout.dp, 2), global_batch=None)
    if layout.zero < 3:
        higher = replace(layout, zero=layout.zero + 1)
        assert memory(name, job, higher).total_bytes <= memory(name, job, layout).total_bytes * (1 + 1e-9)


@settings(max_examples=60, deadline=None)
@given(model_names, jobs, layouts, st.sampled_from(["tp", "pp"]))
def test_more_model_parallelism_never_costs_more(name: str, job: TrainingJob, layout: Layout, degree: str) -> None:
    bigger = replace(layout, **{degree: getattr(layout, degree) * 2})
    assert memory(name, job, bigger).total_bytes <= memory(name, job, layout).total_bytes * (1 + 1e-9)


@settings(max_examples=60, deadline=None)
@given(model_names, jobs, layouts)
def test_more_data_parallelism_under_zero_never_costs_more(name: str, job: TrainingJob, layout: Layout) -> None:
    sharded = replace(layout, zero=max(layout.zero, 1), global_batch=None)
    bigger = replace(sharded, dp=sharded.dp * 2)
    assert memory(name, job, bigger).total_bytes <= memory(name, job, sharded).total_bytes * (1 + 1e-9)
