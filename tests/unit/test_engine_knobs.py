"""Engine knobs set by the user on presets whose default has no fixed value (SGLang's mem_fraction_static is a
heuristic): the knob replaces it, with "set by the user" as its source, and the pool follows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import suanli
from suanli.core.inference_memory import (
    activation_bytes,
    engine_setting,
    inference_memory,
    profiled_activation_bytes,
)
from suanli.spec.engines import EngineKnobs, get_engine


def test_mem_fraction_static_on_sglang() -> None:
    engine = EngineKnobs(gpu_memory_utilization=0.8).apply(get_engine("sglang"))
    assert engine.memory_fraction == 0.8 and engine.sources["memory_fraction"] == "set by the user"
    spec, h100 = suanli.load_model("qwen3-8b"), suanli.get_accelerator("h100")
    r = inference_memory(spec, h100, prompt_tokens=100, engine=engine)
    # SGLang: pool = mem_fraction_static x (visible - CUDA context) - weights (model_runner profile_max_num_token)
    expected = 0.8 * (r.visible_bytes - r.overheads["cuda_context"]) - r.weights_bytes
    assert r.kv_budget_bytes == pytest.approx(expected, rel=1e-12)


def test_vllm_without_chunked_prefill_profiles_a_whole_prompt_step() -> None:
    """Chunked prefill off: vLLM's step budget, and the dummy batch its memory profile runs, default to
    max(max_model_len, 2048) tokens (SchedulerConfig); the pool shrinks by the larger activation peak."""
    spec, h100 = suanli.load_model("llama-3.1-8b"), suanli.get_accelerator("h100")
    vllm = get_engine("vllm")
    whole = EngineKnobs(enable_chunked_prefill=False).apply(vllm)
    short = EngineKnobs(enable_chunked_prefill=False, max_model_len=1000).apply(vllm)
    assert engine_setting(whole, h100, spec=spec).chunk_tokens == 131072  # the model's context
    assert engine_setting(short, h100, spec=spec).chunk_tokens == 2048  # never below vLLM's 2048
    given = EngineKnobs(enable_chunked_prefill=False, max_num_batched_tokens=4096).apply(vllm)
    assert engine_setting(given, h100, spec=spec).chunk_tokens == 4096 and not given.chunked_prefill
    chunked, off = (inference_memory(spec, h100, prompt_tokens=100, engine=e) for e in (vllm, whole))
    # the profile's peak: max(forward over the step's tokens, the sampler over min(max_num_seqs, step) rows)
    whole_peak = profiled_activation_bytes(spec, engine_setting(whole, h100, spec=spec))
    assert whole_peak == activation_bytes(spec, chunk_tokens=131072, sampled_rows=1024,
                                          sampler_bytes_per_logit=vllm.sampler_bytes_per_logit)
    peak = whole_peak - profiled_activation_bytes(spec, engine_setting(vllm, h100, spec=spec))
    assert peak > 5 * 2**30  # a 131,072-token step's activations, against an 8,192-token chunk's
    assert chunked.kv_budget_bytes - off.kv_budget_bytes == pytest.approx(peak, rel=1e-9)


def test_max_model_len_bounds_requests_and_vllm_start(capsys: pytest.CaptureFixture[str]) -> None:
    from suanli.cli.main import main

    assert main(["infer", "llama-3.1-8b", "--gpu", "h100", "--prompt", "1000", "--output", "100",
                 "--max-model-len", "1000"]) == 2
    assert "longer than --max-model-len 1,000" in capsys.readouterr().err
    assert main(["simulate", "llama-3.1-8b", "--gpu", "h100", "--concurrency", "2", "--requests", "4",
                 "--prompt", "1000", "--output", "100", "--max-model-len", "1000"]) == 2
    assert "longer than --max-model-len 1,000" in capsys.readouterr().err
    assert main(["infer", "llama-3.1-8b", "--gpu", "h100", "--max-model-len", "200000"]) == 2
    assert "beyond llama-3.1-8b's 131,072 positions" in capsys.readouterr().err
    # a 24 GB card's pool holds ~40k tokens: vLLM's default max_model_len (the whole 131,072 context) does not start
    assert main(["infer", "llama-3.1-8b", "--gpu", "rtx-4090", "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any("would not start" in n for n in notes)
    for argv in (["--max-model-len", "16384"], ["--engine", "sglang"]):
        assert main(["infer", "llama-3.1-8b", "--gpu", "rtx-4090", "--json", *argv]) == 0
        assert not any("would not start" in n for n in json.loads(capsys.readouterr().out)["notes"])
    assert main(["simulate", "llama-3.1-8b", "--gpu", "rtx-4090", "--concurrency", "2", "--requests", "4",
                 "--json"]) == 0
    assert any("would not start" in n for n in json.loads(capsys.readouterr().out)["notes"])


def test_an_attention_free_model_gets_no_vllm_start_note(capsys: pytest.CaptureFixture[str]) -> None:
    """Mamba keeps one fixed-size state per request: vLLM's start-up check does not grow with max_model_len, so the
    note (which quoted Mamba-Codestral's unbounded context, 2,147,483,647 tokens) is not given."""
    from suanli.cli.main import main

    assert main(["infer", "mamba-codestral-7b", "--gpu", "h100", "--json"]) == 0
    assert not any("would not start" in n for n in json.loads(capsys.readouterr().out)["notes"])


def test_a_config_without_a_length_profiles_vllms_2048_token_default() -> None:
    """Mamba-Codestral's config states no length (UNBOUNDED_CONTEXT): vLLM then assumes max_model_len 2048, so with
    chunked prefill off its step budget and memory profile are max(2048, 2048) tokens, not 2**31 - 1 (which left
    no room for a KV cache)."""
    spec, h100 = suanli.load_model("mamba-codestral-7b"), suanli.get_accelerator("h100")
    whole = EngineKnobs(enable_chunked_prefill=False).apply(get_engine("vllm"))
    assert engine_setting(whole, h100, spec=spec).chunk_tokens == 2048
    given = EngineKnobs(enable_chunked_prefill=False, max_model_len=8192).apply(get_engine("vllm"))
    assert engine_setting(given, h100, spec=spec).chunk_tokens == 8192


def test_simulate_names_the_longest_request_not_the_options_a_trace_replaces(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A trace sets the request lengths: the --max-model-len error names its longest request (850 tokens), not
    --prompt + --output, which the user did not give; said in Chinese under --lang zh."""
    from suanli.cli.main import main

    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"prompt_tokens": 800, "output_tokens": 50, "arrival_s": 0}\n'
                     '{"prompt_tokens": 300, "output_tokens": 50, "arrival_s": 0.1}\n')
    argv = ["simulate", "llama-3.1-8b", "--gpu", "h100", "--trace", str(trace), "--max-model-len", "500"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the longest request (prompt + output) is 850 tokens, longer than --max-model-len 500" in err
    assert "--prompt + --output" not in err
    assert main([*argv, "--lang", "zh"]) == 2
    assert "最长的请求（提示词 + 输出） 为 850 个 token" in capsys.readouterr().err


def test_simulate_exports_the_max_model_len_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from suanli.cli.main import main

    out = tmp_path / "serve"
    assert main(["simulate", "llama-3.1-8b", "--gpu", "h100", "--concurrency", "2", "--requests", "4",
                 "--max-model-len", "8192", "--export", "vllm", str(out)]) == 0
    capsys.readouterr()
    assert "--max-model-len 8192" in " ".join(p.read_text() for p in out.iterdir())


def test_max_model_len_is_llamacpp_context() -> None:
    """llama.cpp allocates its KV cache for -c (n_ctx) tokens: --max-model-len sets it, and the pool holds no more."""
    spec, gpu = suanli.load_model("llama-3.1-8b"), suanli.get_accelerator("rtx-4090")
    engine = EngineKnobs(max_model_len=8192).apply(get_engine("llamacpp"))
    assert engine.context_tokens == 8192
    assert inference_memory(spec, gpu, prompt_tokens=1000, engine=engine).kv_capacity_tokens == 8192
