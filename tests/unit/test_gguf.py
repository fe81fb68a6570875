"""GGUF headers: tiny files written with gguf.GGUFWriter in tmp_path; only headers are read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from suanli.errors import ConfigError, Unavailable
from suanli.spec.gguf import gguf_to_hf_config, read_gguf
from suanli.spec.precision import parse_number_format


def write_gguf(path: Path, arch: str = "llama", *, untied: bool = False,
               extra: dict[str, Any] | None = None) -> Path:
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny")
    w.add_block_count(1)
    w.add_embedding_length(256)
    w.add_feed_forward_length(512)
    w.add_context_length(2048)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1e6)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    w.add_token_list([f"t{i}" for i in range(100)])
    for key, value in (extra or {}).items():
        getattr(w, key)(value)
    w.add_tensor("token_embd.weight", np.zeros((100, 256), np.float16))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(256, np.float32))
    q8 = gguf.quants.quantize(np.zeros((512, 256), np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.ffn_up.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    # Q4_K has no Python quantizer: write zeroed 144-byte blocks, 1 per 256-wide row.
    w.add_tensor("blk.0.ffn_down.weight", np.zeros((256, 2 * 144), np.uint8),
                 raw_dtype=gguf.GGMLQuantizationType.Q4_K)
    if untied:
        w.add_tensor("output.weight", np.zeros((100, 256), np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_read_gguf(tmp_path: Path) -> None:
    g = read_gguf(write_gguf(tmp_path / "tiny.gguf"))
    assert (g.architecture, g.name, g.file_type) == ("llama", "tiny", "Q4_K_M")
    assert (g.token_count, g.tensor_count) == (100, 4)
    assert dict(g.params_by_dtype) == {"F16": 25600, "F32": 256, "Q4_K": 512 * 256, "Q8_0": 512 * 256}
    # bytes by type from the ggml block layouts: Q8_0 34 bytes / 32, Q4_K 144 bytes / 256
    assert dict(g.bytes_by_dtype) == {"F16": 51200, "F32": 1024, "Q4_K": 512 * 256 * 144 // 256,
                                      "Q8_0": 512 * 256 * 34 // 32}
    assert g.bytes_by_dtype["Q4_K"] == 512 * 256 * parse_number_format("q4_k").bytes_per_param
    assert g.bits_per_weight == 8 * g.total_bytes / g.total_params
    assert g.tensors["token_embd.weight"].shape == (100, 256)  # row-major, like the HF embedding
    assert g.tensors["blk.0.ffn_down.weight"].shape == (256, 512)
    assert g.metadata["llama.attention.layer_norm_rms_epsilon"] == 1e-6  # float32 read back shortest
    assert "tokenizer.ggml.tokens" not in g.metadata


def test_gguf_to_hf_config_llama(tmp_path: Path) -> None:
    config = gguf_to_hf_config(read_gguf(write_gguf(tmp_path / "tiny.gguf")))
    assert config == {
        "model_type": "llama", "hidden_size": 256, "num_hidden_layers": 1, "intermediate_size": 512,
        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1e6,
        "max_position_embeddings": 2048, "vocab_size": 100, "tie_word_embeddings": True,
    }
    untied = gguf_to_hf_config(read_gguf(write_gguf(tmp_path / "untied.gguf", untied=True)))
    assert untied["tie_word_embeddings"] is False


def test_gguf_to_hf_config_qwen3_and_gemma2(tmp_path: Path) -> None:
    qwen3_file = write_gguf(tmp_path / "q.gguf", "qwen3", extra={"add_key_length": 128})
    qwen3 = gguf_to_hf_config(read_gguf(qwen3_file))
    assert (qwen3["model_type"], qwen3["head_dim"]) == ("qwen3", 128)
    gemma_file = write_gguf(tmp_path / "g.gguf", "gemma2", extra={
        "add_sliding_window": 4096, "add_attn_logit_softcapping": 50.0, "add_final_logit_softcapping": 30.0})
    gemma = gguf_to_hf_config(read_gguf(gemma_file))
    assert (gemma["model_type"], gemma["sliding_window"]) == ("gemma2", 4096)
    assert (gemma["attn_logit_softcapping"], gemma["final_logit_softcapping"]) == (50.0, 30.0)


def test_gguf_unsupported_architecture(tmp_path: Path) -> None:
    g = read_gguf(write_gguf(tmp_path / "b.gguf", "bloom"))
    with pytest.raises(ConfigError, match=r"'bloom' has no config adapter; supported: gemma2, gemma3, llama"):
        gguf_to_hf_config(g)


def test_not_a_gguf(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    path = tmp_path / "bad.gguf"
    path.write_bytes(b"NOPE" + bytes(64))
    with pytest.raises(ConfigError, match="not a readable GGUF"):
        read_gguf(path)


def test_gguf_needs_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf now raises ImportError
    with pytest.raises(Unavailable, match=r"pip install gguf"):
        read_gguf(tmp_path / "x.gguf")


def test_gguf_to_hf_config_moe(tmp_path: Path) -> None:
    experts = {"add_expert_count": 8, "add_expert_used_count": 2, "add_expert_feed_forward_length": 128}
    mixtral = gguf_to_hf_config(read_gguf(write_gguf(tmp_path / "m.gguf", "llama", extra=experts)))
    assert (mixtral["model_type"], mixtral["num_local_experts"]) == ("mixtral", 8)
    assert mixtral["num_experts_per_tok"] == 2
    qwen = gguf_to_hf_config(read_gguf(write_gguf(tmp_path / "q.gguf", "qwen3moe", extra=experts)))
    assert (qwen["model_type"], qwen["num_experts"], qwen["moe_intermediate_size"]) == ("qwen3_moe", 8, 128)
