"""Model-file mistakes (safetensors shards, GGUF files, quantization_config, --as) said in English and Chinese.

Each case writes the bad files a user really ends up with (an interrupted download, a Git LFS checkout without
``git lfs pull``, a file that is not GGUF, a hand-edited quantization_config) and runs the CLI on them."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from tests.surface.cli_helpers import KeyedError

from suanli.cli.main import main

CONFIG = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 2048,
          "torch_dtype": "bfloat16"}


def model_dir(tmp_path: Path, **config: object) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({**CONFIG, **config}), encoding="utf-8")
    return directory


def test_a_truncated_safetensors_header(tmp_path: Path, keyed_error: KeyedError) -> None:
    directory = model_dir(tmp_path)
    header = json.dumps({"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}).encode()
    (directory / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header[:20])
    keyed_error(["params", str(directory)], "error.safetensors.header_truncated")


def test_a_git_lfs_pointer_instead_of_the_weights(tmp_path: Path, keyed_error: KeyedError) -> None:
    directory = model_dir(tmp_path)
    (directory / "model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 16060522880\n", encoding="utf-8")
    keyed_error(["params", str(directory)], "error.safetensors.lfs_pointer")


def test_shards_missing_from_an_interrupted_download(tmp_path: Path, keyed_error: KeyedError,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    directory = model_dir(tmp_path)
    shards = [f"model-{i:05d}-of-00008.safetensors" for i in range(1, 9)]
    index = {"weight_map": {f"layer{i}.weight": shard for i, shard in enumerate(shards)}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    keyed_error(["params", str(directory)], "error.safetensors.shards_missing")
    assert main(["params", str(directory), "--lang", "zh"]) == 2
    said = capsys.readouterr().err
    assert "以及另外 3 个；请下载它们" in said and " and 3 more" not in said  # the "and N more" tail is said too


def test_a_file_that_is_not_gguf(tmp_path: Path, keyed_error: KeyedError) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"<!DOCTYPE html><html>404 Not Found</html>" * 4)  # a saved error page, not the model
    keyed_error(["params", str(path)], "error.gguf.unreadable")


def test_a_gguf_of_an_architecture_without_adapter(tmp_path: Path, keyed_error: KeyedError) -> None:
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    path = tmp_path / "bloom.gguf"
    writer = gguf.GGUFWriter(str(path), "bloom")
    writer.add_block_count(1)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_tensor("token_embd.weight", np.zeros((10, 64), np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    keyed_error(["params", str(path)], "error.gguf.unsupported_architecture")


@pytest.mark.parametrize(("quantization", "key"), [
    ({"quant_method": "awq", "bits": 8, "group_size": 128}, "error.quant_config.awq_bits"),
    ({"quant_method": "fp8", "weight_block_size": 128}, "error.quant_config.block_size"),
    ({"quant_method": "gptq", "bits": "4", "group_size": 128}, "error.quant_config.integer"),
    ({"quant_method": "fp8", "modules_to_not_convert": "lm_head"}, "error.quant_config.module_list"),
], ids=["awq_bits", "block_size", "integer", "module_list"])
def test_a_hand_edited_quantization_config(quantization: dict[str, object], key: str, tmp_path: Path,
                                           keyed_error: KeyedError) -> None:
    directory = model_dir(tmp_path, quantization_config=quantization)
    keyed_error(["params", str(directory / "config.json")], key)


def test_as_family_says_the_inner_error_in_chinese_too(tmp_path: Path, keyed_error: KeyedError,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"model_type": "my_llama", "hidden_size": 4096}', encoding="utf-8")
    keyed_error(["params", str(config), "--as", "llama"], "error.hf.read_as")
    assert main(["params", str(config), "--as", "llama", "--lang", "zh"]) == 2
    said = capsys.readouterr().err
    assert "缺少必需的字段 'num_attention_heads'" in said and "（按 llama 的 config 读取，--as llama）" in said
    assert "is missing" not in said
