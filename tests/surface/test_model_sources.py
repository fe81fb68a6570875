"""Every way MODEL resolves, end to end through the CLI (see ``suanli.spec.resolve``'s docstring):
config.json, model directory (+ safetensors, single or sharded), .gguf, catalog name or alias, and a Hugging
Face repo id from the local cache or, when that misses, the hub (offline here: one clear line, no network).

The weight files are tiny and written here; their contents are derived by hand from the ``tiny_llama``
fixture (2 layers, hidden 64, 4 heads of 16, 2 KV heads, SwiGLU 128, vocab 100, untied).
"""

from __future__ import annotations

import json
import math
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.surface.cli_helpers import assert_one_line_error, run, run_json

import suanli

# tiny_llama by hand: embedding and lm_head 100·64 each; per layer q 64·64, k and v 32·64 each, o 64·64,
# gate and up 128·64 each, down 64·128, two norms of 64; final norm 64.
TINY_TOTAL = 2 * 100 * 64 + 2 * (64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 128 * 64 + 2 * 64) + 64
NORM_PARAMS = (2 * 2 + 1) * 64
LLAMA_31_8B = 8_030_261_248








# ---- writers ---------------------------------------------------------------------------------------------


def hf_llama_tensors(config: dict[str, Any]) -> dict[str, tuple[str, list[int]]]:
    """HF Llama tensor names and shapes for ``config``: matrices in BF16, RMSNorm weights in F32."""
    h, f, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    kv = config["num_key_value_heads"] * h // config["num_attention_heads"]
    tensors = {"model.embed_tokens.weight": ("BF16", [v, h])}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tensors |= {p + "self_attn.q_proj.weight": ("BF16", [h, h]), p + "self_attn.k_proj.weight": ("BF16", [kv, h]),
                    p + "self_attn.v_proj.weight": ("BF16", [kv, h]), p + "self_attn.o_proj.weight": ("BF16", [h, h]),
                    p + "mlp.gate_proj.weight": ("BF16", [f, h]), p + "mlp.up_proj.weight": ("BF16", [f, h]),
                    p + "mlp.down_proj.weight": ("BF16", [h, f]), p + "input_layernorm.weight": ("F32", [h]),
                    p + "post_attention_layernorm.weight": ("F32", [h])}
    return tensors | {"model.norm.weight": ("F32", [h]), "lm_head.weight": ("BF16", [v, h])}


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> Path:
    """The safetensors format by hand: u64 little-endian header length, JSON header, zeroed data."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = {"BF16": 2, "F32": 4}[dtype] * math.prod(shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return path


def model_dir(path: Path, config: dict[str, Any]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


def write_tiny_llama_gguf(path: Path) -> Path:
    """tiny_llama as llama.cpp names it: token_embd F16, norms F32, every matrix (output too) Q8_0."""
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    for add, value in (("block_count", 2), ("embedding_length", 64), ("feed_forward_length", 128),
                       ("head_count", 4), ("head_count_kv", 2), ("context_length", 256),
                       ("layer_norm_rms_eps", 1e-5)):
        getattr(w, f"add_{add}")(value)

    def q8(name: str, rows: int, cols: int) -> None:
        data = gguf.quants.quantize(np.zeros((rows, cols), np.float32), gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor(name, data, raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    w.add_tensor("token_embd.weight", np.zeros((100, 64), np.float16))
    for i in range(2):
        for role, rows, cols in (("attn_q", 64, 64), ("attn_k", 32, 64), ("attn_v", 32, 64),
                                 ("attn_output", 64, 64), ("ffn_gate", 128, 64), ("ffn_up", 128, 64),
                                 ("ffn_down", 64, 128)):
            q8(f"blk.{i}.{role}.weight", rows, cols)
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(64, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(64, np.float32))
    w.add_tensor("output_norm.weight", np.ones(64, np.float32))
    q8("output.weight", 100, 64)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def hf_cache(root: Path, repo_id: str, config: dict[str, Any], revision: str = "0123abcd") -> Path:
    """The HF hub cache layout: <root>/models--org--name/snapshots/<revision>/config.json (+ refs/main)."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    model_dir(repo / "snapshots" / revision, config)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return repo


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails at once, so a test can never wait on a network."""

    def refuse(*_: object, **__: object) -> None:
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---- config.json and model directories -------------------------------------------------------------------


def test_config_json_path(capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_llama: dict[str, Any]) -> None:
    directory = model_dir(tmp_path / "tiny-llama", tiny_llama)
    payload = run_json(capsys, "params", str(directory / "config.json"))
    assert (payload["model"], payload["total_params"]) == ("tiny-llama", TINY_TOTAL)
    assert "stored_params" not in payload  # a config.json alone says nothing about stored weights
    assert suanli.resolve_model(str(directory / "config.json")).origin == "config"


def test_directory_with_safetensors(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                    tiny_llama: dict[str, Any]) -> None:
    directory = model_dir(tmp_path / "tiny-llama", tiny_llama)
    write_safetensors(directory / "model.safetensors", hf_llama_tensors(tiny_llama))
    payload = run_json(capsys, "params", str(directory))
    assert payload["total_params"] == payload["stored_params"] == TINY_TOTAL
    assert payload["stored_bytes"] == 2 * (TINY_TOTAL - NORM_PARAMS) + 4 * NORM_PARAMS
    assert payload["stored_params_by_dtype"] == {"BF16": TINY_TOTAL - NORM_PARAMS, "F32": NORM_PARAMS}
    assert not any("weight files store" in note for note in payload["notes"])
    resolved = suanli.resolve_model(str(directory))
    assert resolved.origin == "directory" and resolved.stored is not None


def test_directory_without_weights_uses_config(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               tiny_llama: dict[str, Any]) -> None:
    payload = run_json(capsys, "params", str(model_dir(tmp_path / "m", tiny_llama)))
    assert payload["total_params"] == TINY_TOTAL and "stored_params" not in payload


def test_stored_weights_differ_from_config(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           tiny_llama: dict[str, Any]) -> None:
    directory = model_dir(tmp_path / "m", tiny_llama)
    tensors = hf_llama_tensors(tiny_llama)
    del tensors["lm_head.weight"]  # e.g. a checkpoint saved with tied weights
    write_safetensors(directory / "model.safetensors", tensors)
    payload = run_json(capsys, "params", str(directory))
    assert payload["total_params"] - payload["stored_params"] == 100 * 64
    assert any("-6,400" in note for note in payload["notes"]), payload["notes"]


def test_sharded_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_llama: dict[str, Any]) -> None:
    directory = model_dir(tmp_path / "m", tiny_llama)
    tensors = list(hf_llama_tensors(tiny_llama).items())
    shards = {"model-00001-of-00002.safetensors": dict(tensors[:10]),
              "model-00002-of-00002.safetensors": dict(tensors[10:])}
    for name, part in shards.items():
        write_safetensors(directory / name, part)
    weight_map = {tensor: name for name, part in shards.items() for tensor in part}
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    write_safetensors(directory / "consolidated.safetensors", dict(tensors))  # not in the index: ignored
    payload = run_json(capsys, "params", str(directory))
    assert payload["total_params"] == payload["stored_params"] == TINY_TOTAL
    assert payload["stored_bytes"] == 2 * (TINY_TOTAL - NORM_PARAMS) + 4 * NORM_PARAMS

    (directory / "model-00002-of-00002.safetensors").unlink()
    assert_one_line_error(*run(capsys, "params", str(directory)), "1 are missing", "model-00002-of-00002")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def _bad_json_header(path: Path) -> None:
    path.write_bytes(struct.pack("<Q", 9) + b'{"a": [1,' + bytes(64))


def _header_longer_than_file(path: Path) -> None:
    path.write_bytes(struct.pack("<Q", 10_000) + b"{}")


@pytest.mark.parametrize(("damage", "fragment"), [
    (_truncate, "truncated"), (_bad_json_header, "not valid JSON"), (_header_longer_than_file, "claims 10000"),
])
def test_damaged_safetensors(capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_llama: dict[str, Any],
                             damage: Any, fragment: str) -> None:
    directory = model_dir(tmp_path / "m", tiny_llama)
    damage(write_safetensors(directory / "model.safetensors", hf_llama_tensors(tiny_llama)))
    assert_one_line_error(*run(capsys, "params", str(directory)), "model.safetensors", fragment)


# ---- GGUF ------------------------------------------------------------------------------------------------


def test_gguf_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_tiny_llama_gguf(tmp_path / "tiny-llama-Q8_0.gguf")
    payload = run_json(capsys, "params", str(path))
    assert (payload["model"], payload["model_type"]) == ("tiny-llama-Q8_0", "llama")
    assert payload["total_params"] == payload["stored_params"] == TINY_TOTAL
    # ggml block layouts: F16 2 bytes, F32 4 bytes, Q8_0 34 bytes per 32 weights (fp16 scale + 32 int8)
    embedding = 100 * 64
    q8_params = TINY_TOTAL - embedding - NORM_PARAMS
    assert payload["stored_bytes"] == 2 * embedding + 4 * NORM_PARAMS + q8_params * 34 // 32
    resolved = suanli.resolve_model(str(path))
    assert resolved.origin == "gguf" and resolved.gguf is not None
    assert resolved.gguf.tensor_count == 2 * 9 + 3


@pytest.mark.parametrize("keep", [0.5, 0.01, 0.0])
def test_truncated_gguf(capsys: pytest.CaptureFixture[str], tmp_path: Path, keep: float) -> None:
    path = write_tiny_llama_gguf(tmp_path / "tiny.gguf")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    assert_one_line_error(*run(capsys, "params", str(path)), "tiny.gguf", "not a readable GGUF")


def test_gguf_suffix_any_case(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_tiny_llama_gguf(tmp_path / "TINY.GGUF")
    assert run_json(capsys, "params", str(path))["stored_params"] == TINY_TOTAL


# ---- Hugging Face repo ids ---------------------------------------------------------------------------------


def test_repo_id_from_hf_cache(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               tiny_llama: dict[str, Any], no_network: None) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    hf_cache(tmp_path, "acme/tiny-llama", tiny_llama)
    payload = run_json(capsys, "params", "acme/tiny-llama")
    assert (payload["model"], payload["total_params"]) == ("acme/tiny-llama", TINY_TOTAL)  # not the hash
    assert suanli.resolve_model("acme/tiny-llama").origin == "hf-cache"


def test_hf_home_cache(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       tiny_llama: dict[str, Any], no_network: None) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    hf_cache(tmp_path / "hub", "acme/tiny-llama", tiny_llama)
    assert run_json(capsys, "params", "acme/tiny-llama")["total_params"] == TINY_TOTAL


def test_local_path_wins_over_repo_id(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, tiny_llama: dict[str, Any]) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    hf_cache(tmp_path / "cache", "acme/tiny-llama", {**tiny_llama, "num_hidden_layers": 1})
    model_dir(tmp_path / "acme" / "tiny-llama", tiny_llama)
    monkeypatch.chdir(tmp_path)
    assert run_json(capsys, "params", "acme/tiny-llama")["total_params"] == TINY_TOTAL
    assert suanli.resolve_model("acme/tiny-llama").origin == "directory"


def _offline(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    constants = sys.modules.get("huggingface_hub.constants")  # read the environment once, at import
    if constants is not None:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))


def test_repo_id_not_cached_hub_offline(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, no_network: None) -> None:
    pytest.importorskip("huggingface_hub")
    _offline(monkeypatch, tmp_path)
    code, out, err = run(capsys, "params", "acme/not-cached")
    assert_one_line_error(code, out, err, "'acme/not-cached'", "Hugging Face cache", "pass its path")


def _download_must_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub client's download (which retries for ~24 s offline) must not be reached."""
    hub = pytest.importorskip("huggingface_hub")

    def fail(*_: object, **__: object) -> None:
        raise AssertionError("hf_hub_download was called although the Hub cannot be reached")

    monkeypatch.setattr(hub, "hf_hub_download", fail)


def test_offline_env_fails_before_the_hub_client(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, no_network: None) -> None:
    _offline(monkeypatch, tmp_path)
    _download_must_not_run(monkeypatch)
    code, out, err = run(capsys, "params", "acme/not-cached")
    assert_one_line_error(code, out, err, "'acme/not-cached'", "HF_HUB_OFFLINE", "pass its path")


def test_unreachable_hub_fails_at_once(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, no_network: None) -> None:
    # Not offline by the environment, but no connection can be opened: one line, no retries.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.invalid")
    _download_must_not_run(monkeypatch)
    code, out, err = run(capsys, "params", "acme/not-cached")
    assert_one_line_error(code, out, err, "'acme/not-cached'", "hub.example.invalid cannot be reached", "pass its path")


def test_repo_id_not_cached_without_hub_client(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, no_network: None) -> None:
    _offline(monkeypatch, tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import huggingface_hub now fails
    code, out, err = run(capsys, "params", "acme/not-cached")
    assert_one_line_error(code, out, err, "'acme/not-cached'", "local Hugging Face cache", "pip install")


# ---- catalog names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["llama-3.1-8b", "LLAMA-3.1-8B", "Llama_3.1_8b", " llama 3.1 8b ",
                                  "meta-llama/Llama-3.1-8B", "META-LLAMA/LLAMA-3.1-8B-INSTRUCT", "llama3.1-8b",
                                  "meta-llama/Meta-Llama-3.1-8B"])
def test_catalog_names(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       tiny_llama: dict[str, Any], name: str, no_network: None) -> None:
    # A cached copy under the same repo id does not shadow the catalog entry.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    hf_cache(tmp_path, "meta-llama/Llama-3.1-8B", tiny_llama)
    payload = run_json(capsys, "params", name)
    assert (payload["model"], payload["total_params"]) == ("llama-3.1-8b", LLAMA_31_8B)
    assert payload["stated_params"] == 8e9
    assert suanli.resolve_model(name).origin == "catalog"


def test_unknown_name_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(*run(capsys, "params", "llama-3.1-8c"), "unknown model", "did you mean llama-3.1-8b")
    assert_one_line_error(*run(capsys, "params", "  "), "no model given")
