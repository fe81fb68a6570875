"""The checkpoint's quantization_config as the default weight format: layouts, unquantized modules, bytes by
component, and the defaults of infer and fit."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.core.inference_memory import inference_memory, weight_bytes_per_gpu
from suanli.errors import ConfigError
from suanli.search.fit import fit_table, inference_evaluator
from suanli.spec.checkpoint_quant import read_checkpoint_quant, unquantized_parts
from suanli.spec.engines import get_engine
from suanli.spec.hardware import get_accelerator
from suanli.spec.hf import spec_from_config
from suanli.spec.precision import LAYOUTS
from suanli.spec.resolve import load_model
from suanli.units import GiB


def _read(quantization: dict[str, Any]) -> Any:
    found, note = read_checkpoint_quant({"quantization_config": quantization}, "m")
    assert note is None
    return found


def test_deepseek_fp8_blocks_cost_one_fp32_scale_per_128x128() -> None:
    q = _read({"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]})
    assert q.weights.key == "fp8-block128x128"
    assert q.weights.bits_per_param == pytest.approx(8 + 32 / (128 * 128))
    # a [256, 512] weight: 2 × 4 blocks, 8 fp32 scales
    assert q.weights.tensor_bits(out_features=256, in_features=512) == 256 * 512 * 8 + 8 * 32


@pytest.mark.parametrize(("config", "key", "bits"), [
    ({"quant_method": "gptq", "bits": 4, "group_size": 128}, "gptq-4bit-g128", None),
    ({"quant_method": "awq", "bits": 4, "group_size": 64}, "awq-4bit-g64", 4 + (16 + 4) / 64),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_use_double_quant": False}, "nf4-nodq",
     4 + 32 / 64),
    ({"load_in_4bit": True, "bnb_4bit_use_double_quant": True}, "nf4", None),
    ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "int8", 8),
    ({"quant_method": "mxfp4"}, "mxfp4", 4.25),
    ({"quant_method": "fp8"}, "fp8_e4m3", 8),
    ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
        "num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, "symmetric": True}}}},
     "int4-sym-g128", 4 + 16 / 128),
])
def test_methods_map_to_block_layouts(config: dict[str, Any], key: str, bits: float | None) -> None:
    q = _read(config)
    assert q.weights.key == key
    if bits is not None:
        assert q.weights.bits_per_param == pytest.approx(bits)


def test_unknown_method_is_a_note_not_a_guess() -> None:
    found, note = read_checkpoint_quant({"quantization_config": {"quant_method": "hqq"}}, "m")
    assert found is None and note is not None and "hqq" in note and "--quant" in note


def test_malformed_block_size_names_the_key() -> None:
    with pytest.raises(ConfigError, match="weight_block_size"):
        read_checkpoint_quant({"quantization_config": {"quant_method": "fp8", "weight_block_size": [128]}}, "m")


def test_module_names_map_to_groups_and_roles() -> None:
    gpt_oss = ("model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head")
    assert unquantized_parts(gpt_oss) == {"attention"}
    assert unquantized_parts(("re:.*kv_a_proj_with_mqa$",)) == {"attn_kv_a_mqa"}
    assert unquantized_parts(("model.layers.0.mlp.experts.3.down_proj",)) == {"experts/ffn_down"}
    assert unquantized_parts(("model.layers.1.mlp",)) == {"mlp", "experts", "shared_experts"}
    assert unquantized_parts(("gate", "e_score_correction_bias", "lm_head")) == frozenset()


def test_gpt_oss_keeps_attention_in_bf16_and_matches_the_model_card() -> None:
    """gpt-oss-20b: 24 layers; experts 32 × 3 × 2880² in MXFP4 (4.25 bits); attention 2880 × (4096 + 512 + 512)
    + 4096 × 2880 per layer in bf16. Model card (OpenAI 2025, arXiv:2508.10925, Table 1): checkpoints of
    12.8 GiB (20b) and 60.8 GiB (120b)."""
    spec = load_model("gpt-oss-20b")
    assert spec.quantization is not None and spec.quantization.unquantized == {"attention"}
    experts = 24 * 32 * 3 * 2880 * 2880
    attention = 24 * 2880 * (4096 + 512 + 512 + 4096)
    assert weight_bytes_per_gpu(spec).linear_bytes == pytest.approx(experts * 4.25 / 8 + attention * 2)
    assert weight_bytes_per_gpu(spec).total_bytes / GiB == pytest.approx(12.8, abs=0.05)
    assert weight_bytes_per_gpu(load_model("gpt-oss-120b")).total_bytes / GiB == pytest.approx(60.8, abs=0.05)


def test_only_the_checkpoint_format_keeps_its_exceptions(tiny_llama: dict[str, Any]) -> None:
    """tiny: 2 layers; attention q 64×64, k and v 32×64, o 64×64; gated MLP 3 × 128×64. With the MLP left out
    of MXFP4 it stays in bf16; an explicit int8 quantizes every Linear (8 bits + an fp32 scale per row)."""
    config = {**tiny_llama, "torch_dtype": "bfloat16",
              "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.mlp"]}}
    spec = spec_from_config(config, name="tiny")
    mlp, attention = 2 * 3 * 64 * 128, 2 * (64 * 64 + 2 * 32 * 64 + 64 * 64)
    default = weight_bytes_per_gpu(spec)
    assert default.format_key == "mxfp4"
    assert default.linear_bytes == pytest.approx(mlp * 2 + attention * 4.25 / 8)
    rows = 2 * ((64 + 32 + 32 + 64) + (128 + 128 + 64))
    int8 = weight_bytes_per_gpu(spec, LAYOUTS["int8"])
    assert int8.linear_bytes == pytest.approx(mlp + attention + rows * 32 / 8)


def test_infer_defaults_to_the_checkpoint_format_and_says_so() -> None:
    spec, h200 = load_model("deepseek-v3"), get_accelerator("h200")
    memory = inference_memory(spec, h200, prompt_tokens=1024, tp=8)
    assert memory.weights.format_key == "fp8-block128x128"
    # llama.cpp converts checkpoints to GGUF: FP8 blocks are dequantized, MXFP4 experts kept (ggml's MXFP4)
    cpp = inference_memory(spec, h200, prompt_tokens=1024, tp=1, engine=get_engine("llamacpp"))
    assert cpp.weights.format_key != "fp8-block128x128"
    oss = inference_memory(load_model("gpt-oss-20b"), h200, prompt_tokens=1024, engine=get_engine("llamacpp"))
    assert oss.weights.format_key == "mxfp4"


def test_fit_deepseek_v3_needs_8_h200_not_16() -> None:
    spec = load_model("deepseek-v3")
    fitter = inference_evaluator(spec, engine="vllm", quant=None, kv_dtype=None, context=4096, batch=1)
    (row,) = fit_table(fitter, (get_accelerator("h200"),))
    assert row.min_gpus == 8
    (bf16,) = fit_table(inference_evaluator(spec, engine="vllm", quant="bf16", kv_dtype=None, context=4096, batch=1),
                        (get_accelerator("h200"),))
    assert bf16.min_gpus == 16


def test_infer_cli_prints_where_the_weight_format_came_from(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from suanli.cli.main import main

    assert main(["infer", "deepseek-v3", "--gpu", "h200", "--gpus", "8", "--json"]) == 0
    memory = json.loads(capsys.readouterr().out)["memory"]
    assert (memory["weights_format"], memory["weights_format_source"]) == ("fp8-block128x128", "quantization_config")
    assert main(["infer", "deepseek-v3", "--gpu", "h200", "--gpus", "8"]) == 0
    assert "weights fp8-block128x128 (from quantization_config)" in capsys.readouterr().out


def test_lora_over_a_gptq_checkpoint_keeps_the_base_quantized(tiny_llama: dict[str, Any]) -> None:
    """GPTQ 4-bit, groups of 128: per [out, in] weight out·in·4 bits + per row and group an fp16 scale and a
    4-bit zero (20 bits) + an int32 g_idx per input column. tiny: q, o 64×64; k, v 32×64; gate, up 128×64;
    down 64×128 (one group per row everywhere); 2 layers. The rest (embeddings, head, norms) in bf16, the
    adapters in fp32 (4 B)."""
    from suanli.core.memory import training_memory
    from suanli.core.params import count_params
    from suanli.spec.layout import Layout
    from suanli.spec.training import Method, TrainingJob

    config = {**tiny_llama, "torch_dtype": "float16",
              "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128}}
    spec = spec_from_config(config, name="tiny")
    shapes = [(64, 64), (32, 64), (32, 64), (64, 64), (128, 64), (128, 64), (64, 128)]
    bits = 2 * sum(o * i * 4 + o * 20 + i * 32 for o, i in shapes)
    linear = 2 * sum(o * i for o, i in shapes)
    frozen = bits / 8 + (count_params(spec).total - linear) * 2
    memory = training_memory(spec, TrainingJob(seq=64, method=Method.LORA), Layout(), capacity_bytes=1e12)
    assert memory.weights_bytes == pytest.approx(frozen + 4 * memory.trainable_params)
    plain = training_memory(spec_from_config(tiny_llama, name="t"), TrainingJob(seq=64, method=Method.LORA), Layout(),
                            capacity_bytes=1e12)
    assert plain.weights_bytes == pytest.approx(2 * count_params(spec).total + 4 * plain.trainable_params)
