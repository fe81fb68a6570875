"""Fuzzing the three ways input reaches suanli: config.json dicts, command lines, and weight-file headers.

Every case must end the way DESIGN.md §5 promises: exit 0, or exit 2 with exactly one line on stderr (never a
traceback, never "internal error", never an unbounded allocation). Hypothesis shrinks any failure to a small
example; each bug found this way is also pinned as a plain test in ``test_fuzz_regressions.py``.

Runs are seeded (``derandomize``) so CI is deterministic; set ``SUANLI_FUZZ_EXAMPLES`` for a longer local run.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.surface.cli_helpers import run

from suanli.errors import SuanliError
from suanli.spec.hf import spec_from_config
from suanli.spec.resolve import catalog_config, model_catalog

EXAMPLES = int(os.environ.get("SUANLI_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# One base config per family in the catalog: mutations start from real files.
BASES = sorted({catalog_config(e)["model_type"]: catalog_config(e) for e in model_catalog()}.items())

# JSON values a hand-edited or corrupted config.json may hold, sizes far beyond any model included.
JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8),
    st.integers(min_value=-10, max_value=10**15), st.sampled_from([0, 1, 2, 3, 7, 4096, 10**6, 10**9, 10**12]),
    st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(-2, 64), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=2),
)


def assert_clean_exit(code: int, out: str, err: str) -> None:
    """Exit 0, or exit 2 with one line; nothing else is acceptable."""
    assert "Traceback" not in err and "internal error" not in err, err
    assert code in (0, 2), (code, err)
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err


@st.composite
def mutated_config(draw: st.DrawFn) -> dict[str, Any]:
    _, base = draw(st.sampled_from(BASES))
    config = dict(base)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(config)))
        if draw(st.booleans()):
            config[key] = draw(JSON_VALUES)
        else:
            del config[key]
    return config


@FUZZ
@given(config=mutated_config())
def test_config_dicts_load_or_fail_cleanly(config: dict[str, Any]) -> None:
    with contextlib.suppress(SuanliError):  # a clean refusal is fine; anything else fails the test
        spec_from_config(config, name="fuzz")


@FUZZ
@given(config=mutated_config(), command=st.sampled_from([["params"], ["flops", "--seq", "512"],
                                                          ["infer", "--gpu", "h100", "--prompt", "256"],
                                                          ["train", "--gpu", "h100", "--seq", "256"]]))
def test_config_files_through_the_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                      config: dict[str, Any], command: list[str]) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config, allow_nan=True))
    code, out, err = run(capsys, command[0], str(path), *command[1:], "--json")
    assert_clean_exit(code, out, err)
    if code == 0:
        json.loads(out)


MODELS = ["llama-3.1-8b", "mixtral-8x7b", "deepseek-v3", "gemma-2-2b", "bert-base-uncased", "nonexistent-model"]
NUMBERS = ["0", "1", "2", "3", "8", "-1", "1e9", "1e30", "nan", "inf", "0.5", "abc", ""]
FLAGS: dict[str, list[str]] = {
    "params": [],
    "flops": ["--seq", "--batch", "--tokens"],
    "train": ["--gpus", "--tp", "--pp", "--dp", "--ep", "--cp", "--vp", "--zero", "--micro-batch", "--global-batch",
              "--seq", "--tokens", "--lora-rank", "--price", "--pue"],
    "infer": ["--gpus", "--tp", "--batch", "--prompt", "--output"],
    "fit": ["--context", "--batch"],
    "simulate": ["--concurrency", "--rate", "--requests", "--prompt", "--output", "--tp", "--replicas"],
    "plan train": ["--tokens", "--seq", "--global-batch", "--deadline-days", "--budget-usd"],
    "plan serve": ["--rate", "--prompt", "--output", "--slo-ttft-ms", "--slo-tpot-ms"],
}
CHOICES: dict[str, list[str]] = {
    "--gpu": ["h100", "a100-40gb", "4090", "v100", "t4", "tpu-v5p", "mi300x", "m3-max", "nonsense"],
    "--quant": ["bf16", "fp8", "int4", "nf4", "q4_k_m", "mxfp4", "bogus"],
    "--method": ["full", "lora", "qlora", "ia3", "prefix", "bogus"],
    "--recompute": ["none", "selective", "full"],
    "--precision": ["bf16", "fp16", "fp8", "fp32"],
    "--engine": ["vllm", "sglang", "trtllm", "llamacpp", "hf"],
    "--mode": ["infer", "train", "lora", "qlora"],
}
COMMAND_CHOICES = {"train": ["--gpu", "--method", "--recompute", "--precision"],
                   "infer": ["--gpu", "--quant", "--engine"], "fit": ["--mode", "--quant"]}


@st.composite
def command_line(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(FLAGS)))
    argv = [*command.split(), draw(st.sampled_from(MODELS))]
    if command in ("train", "infer", "simulate", "plan train", "plan serve"):
        argv += ["--gpu", draw(st.sampled_from(CHOICES["--gpu"]))]
    if command == "plan train":  # a small search: a few GPUs, a short run
        argv += ["--max-gpus", "8", "--tokens", "1e9"]
    if command == "plan serve":
        argv += ["--rate", "2", "--slo-ttft-ms", "2000", "--slo-tpot-ms", "100", "--prompt", "256", "--output", "32"]
    if command == "simulate":  # keep each run small; the flags below may still override these
        argv += ["--requests", "8", "--concurrency", "2"]
    if FLAGS[command]:
        for flag in draw(st.lists(st.sampled_from(FLAGS[command]), max_size=4, unique=True)):
            argv += [flag, draw(st.sampled_from(NUMBERS))]
    if command in COMMAND_CHOICES:
        for flag in draw(st.lists(st.sampled_from(COMMAND_CHOICES[command]), max_size=2, unique=True)):
            argv += [flag, draw(st.sampled_from(CHOICES[flag]))]
    return argv + draw(st.sampled_from([[], ["--json"], ["--explain"]]))


@FUZZ
@given(argv=command_line())
def test_command_lines_end_cleanly(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert_clean_exit(code, out, err)
    if code == 0 and "--json" in argv:
        json.loads(out)


@FUZZ
@given(header=st.one_of(
    st.binary(max_size=64),
    st.dictionaries(st.text(max_size=6), st.one_of(
        st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets"]), JSON_VALUES, max_size=3),
        JSON_VALUES), max_size=3).map(lambda d: json.dumps(d).encode())),
    declared=st.one_of(st.none(), st.integers(0, 2**64 - 1)))
def test_safetensors_headers(capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_llama: dict[str, Any],
                             header: bytes, declared: int | None) -> None:
    (tmp_path / "config.json").write_text(json.dumps(tiny_llama))
    length = len(header) if declared is None else declared
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", length) + header)
    code, out, err = run(capsys, "params", str(tmp_path), "--json")
    assert_clean_exit(code, out, err)


@FUZZ
@given(body=st.binary(max_size=96), version=st.integers(0, 5))
def test_gguf_headers(capsys: pytest.CaptureFixture[str], tmp_path: Path, body: bytes, version: int) -> None:
    pytest.importorskip("gguf")
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<I", version) + body)
    code, out, err = run(capsys, "params", str(path), "--json")
    assert_clean_exit(code, out, err)
