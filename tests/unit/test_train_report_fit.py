"""A training report that does not fit: the cheapest change first, the headline, runnable flags; PEFT checkpoints
of adapters only; the whole model's trainable count."""

from __future__ import annotations

import pytest

from suanli.cli.main import main
from suanli.core.memory import training_memory
from suanli.core.params import count_params
from suanli.search.advice import fit_suggestions, single_changes
from suanli.search.fit import usable_memory_bytes
from suanli.spec.hardware import get_accelerator
from suanli.spec.layout import Layout
from suanli.spec.resolve import load_model
from suanli.spec.training import Method, TrainingJob
from suanli.train_report import training_report

H100 = get_accelerator("h100")
CAPACITY = usable_memory_bytes(H100)


def test_zero1_alone_is_proposed_before_any_recomputation() -> None:
    """Llama-3-8B, 8× H100, seq 4096: ZeRO-0 needs 16 B/param of states (~120 GiB); ZeRO-1 shards the 12 B of
    master weights and Adam moments 8 ways, enough on its own. The old advice added full recomputation to it."""
    spec, job, layout = load_model("llama-3-8b"), TrainingJob(seq=4096), Layout(dp=8)
    found = fit_suggestions(spec, job, layout, capacity_bytes=CAPACITY)
    assert found[0].change == "ZeRO-1 across the 8 data-parallel GPUs"
    assert "recompute" not in found[0].change


def test_a_combination_only_when_no_single_change_fits() -> None:
    spec, job, layout = load_model("llama-3-8b"), TrainingJob(seq=8192), Layout(dp=8, micro_batch=2)
    first = fit_suggestions(spec, job, layout, capacity_bytes=CAPACITY)[0]
    assert " + " in first.change
    for change in single_changes(layout):
        assert not training_memory(spec, job, change.apply(layout), capacity_bytes=CAPACITY).fits, change.label


def test_a_job_that_does_not_fit_leads_with_it(capsys: pytest.CaptureFixture[str]) -> None:
    spec, job, layout = load_model("llama-3-8b"), TrainingJob(seq=4096), Layout(dp=8)
    report = training_report(spec, job, layout, H100, tokens=1e9)
    values = report.to_dict()
    assert values["memory"]["fits"] is False
    assert values["time"]["runnable"] is False and values["cost"]["runnable"] is False
    assert values["headline"].startswith("DOES NOT FIT")
    assert "nearest layout that fits: ZeRO-1 across the 8 data-parallel GPUs" in values["headline"]
    assert main(["train", "llama-3-8b", "--gpu", "h100", "--gpus", "8", "--seq", "4096"]) == 0
    assert capsys.readouterr().out.startswith("DOES NOT FIT: ")
    fitting = training_report(spec, job, Layout(dp=8, zero=1), H100).to_dict()
    assert fitting["time"]["runnable"] is True and "headline" not in fitting


# LoRA r=16 adapters of Llama-3-8B (32 layers, hidden 4096, 8 KV heads × 128 = 1024, MLP 14336): r · (in + out) per
# linear, on q and o (4096 → 4096), k and v (4096 → 1024), gate, up and down (4096 ↔ 14336).
LLAMA3_8B_LORA16_PARAMS = 32 * 16 * (2 * (4096 + 4096) + 2 * (4096 + 1024) + 3 * (4096 + 14336))

def test_peft_checkpoint_holds_the_adapters_only() -> None:
    """LoRA r=16 on q,k,v,o,gate,up,down of Llama-3-8B: 41,943,040 adapter parameters, saved with fp32 weights
    and Adam's two fp32 moments, 12 B each = 503 MB (not 8.03e9 × 12 B = 96 GB)."""
    spec, job = load_model("llama-3-8b"), TrainingJob(seq=2048, method=Method.LORA)
    cost = training_report(spec, job, Layout(), H100, tokens=1e8).values["cost"]
    assert cost["checkpoint_bytes"] == pytest.approx(LLAMA3_8B_LORA16_PARAMS * 12)
    assert cost["checkpoint_adapter_only"] is True


def test_trainable_is_the_whole_model_and_the_stage_share_is_labelled() -> None:
    spec = load_model("llama-3-8b")
    job = training_report(spec, TrainingJob(seq=2048), Layout(tp=2, pp=2, dp=2, zero=1), H100).values["job"]
    assert job["trainable_params"] == count_params(spec).total
    assert job["trainable_params_per_gpu"] < job["trainable_params"] / 3
    lora = training_report(spec, TrainingJob(seq=2048, method=Method.LORA), Layout(pp=2), H100).values["job"]
    assert lora["trainable_params"] == LLAMA3_8B_LORA16_PARAMS


def test_an_inference_batch_that_does_not_fit_leads_with_it(capsys: pytest.CaptureFixture[str]) -> None:
    """Llama-3-70B in bf16 is 141 GB of weights: one 80 GB H100 holds no KV cache at all."""
    import json

    assert main(["infer", "llama-3-70b", "--gpu", "h100", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["memory"]["fits"] is False and payload["latency"]["runnable"] is False
    assert payload["headline"].startswith("DOES NOT FIT")
    assert main(["infer", "llama-3-70b", "--gpu", "h100"]) == 0
    assert capsys.readouterr().out.startswith("DOES NOT FIT: ")
    assert main(["infer", "llama-3-8b", "--gpu", "h100", "--json"]) == 0
    fits = json.loads(capsys.readouterr().out)
    assert fits["latency"]["runnable"] is True and "headline" not in fits


def test_a_cpu_is_never_told_to_offload_to_host_memory() -> None:
    """On a CPU the device memory is the host memory: offloading the optimizer there frees nothing, so the
    advice leaves it out (on a GPU the same layout gets it)."""
    layout = Layout()
    assert any(c.offload for c in single_changes(layout))
    assert not any(c.offload for c in single_changes(layout, host_offload=False))
    cpu = get_accelerator("epyc-9654")
    spec, job = load_model("llama-3.1-70b"), TrainingJob(seq=4096)
    found = fit_suggestions(spec, job, layout, capacity_bytes=usable_memory_bytes(cpu), host_offload=False, limit=5)
    assert found and not any("offload" in s.change.lower() for s in found)
