"""Runnable exports (suanli.export): the files parse with the target library's own config classes where it
installs on a CPU machine (DeepSpeed, accelerate), and otherwise use only the argument names its source
documents (Megatron-LM, vLLM, SGLang, TensorRT-LLM: tables below, each with the file it comes from).

Hand-derived numbers: 16 GPUs with micro-batch 2 and global batch 128 accumulate 128 / (2 × 16) = 4 micro-batches;
80 layers over pp 4 × vp 2 give 10 layers per virtual stage; 1e12 tokens at 512 × 4096 tokens per step take
ceil(476,837.16) = 476,838 iterations.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from suanli.cli.main import main
from suanli.core.inference_memory import engine_setting
from suanli.errors import LayoutError, NotFound, SpecError
from suanli.export import Export, ServingPlan, TrainingPlan, export_serving, export_training
from suanli.simulate.api import Deployment
from suanli.spec.engines import EngineKnobs, get_engine
from suanli.spec.hardware import get_accelerator
from suanli.spec.layout import Layout, Offload, PipelineSchedule, Recompute
from suanli.spec.precision import parse_number_format
from suanli.spec.resolve import load_model
from suanli.spec.training import Framework, PrecisionMode, TrainingJob

H100 = get_accelerator("h100")
LLAMA_8B = load_model("llama-3.1-8b")


def _training(layout: Layout, *, model: str = "llama-3.1-8b", precision: PrecisionMode = PrecisionMode.MIXED_BF16,
              tokens: float | None = None) -> TrainingPlan:
    return TrainingPlan(spec=load_model(model), job=TrainingJob(seq=4096, precision=precision), layout=layout,
                        accelerator=H100, model_id="meta-llama/Llama-3.1-8B", tokens=tokens)


def _serving(engine: str, **kwargs: object) -> ServingPlan:
    knobs = kwargs.pop("knobs", EngineKnobs())
    deployment = Deployment(accelerator=H100, engine=get_engine(engine), knobs=knobs, **kwargs)  # type: ignore[arg-type]
    return ServingPlan(spec=LLAMA_8B, deployment=deployment, model_id="meta-llama/Llama-3.1-8B-Instruct",
                       max_model_len=8192)


def _flags(command: str) -> list[str]:
    """The ``--flag`` words of every command line in a launch script."""
    words = shlex.split(command.replace("\\\n", " "), comments=True)
    return [w for w in words if w.startswith("--")]


def _values(command: str, flag: str) -> list[str]:
    words = shlex.split(command.replace("\\\n", " "), comments=True)
    return [words[i + 1] for i, w in enumerate(words) if w == flag]


# ---- DeepSpeed: parsed by deepspeed.runtime.config.DeepSpeedConfig ------------------------------------------

DEEPSPEED_LAYOUTS = [
    Layout(dp=16, zero=3, micro_batch=2, global_batch=128, recompute=Recompute.FULL, offload_optimizer=Offload.CPU,
           offload_params=Offload.CPU),
    Layout(dp=8, zero=2, micro_batch=1, global_batch=64, offload_optimizer=Offload.NVME),
    Layout(dp=4, zero=1, micro_batch=4),
    Layout(dp=1, zero=0, micro_batch=8, global_batch=32),
]


@pytest.mark.parametrize("layout", DEEPSPEED_LAYOUTS, ids=lambda lay: f"zero{lay.zero}-dp{lay.dp}")
def test_deepspeed_config_parses_with_deepspeeds_own_class(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    config_module = pytest.importorskip("deepspeed.runtime.config")
    export = export_training("deepspeed", _training(layout, precision=PrecisionMode.MIXED_FP16))
    monkeypatch.setattr(config_module.dist, "get_rank", lambda *a, **k: 0)
    monkeypatch.setattr(config_module.dist, "get_world_size", lambda *a, **k: layout.dp)
    ds = config_module.DeepSpeedConfig(json.loads(export.files["ds_config.json"]))
    assert ds.train_batch_size == layout.effective_global_batch
    assert ds.train_micro_batch_size_per_gpu == layout.micro_batch
    assert ds.gradient_accumulation_steps == layout.grad_accumulation_steps
    assert ds.zero_optimization_stage == layout.zero
    assert ds.float16_config.enabled and not ds.bfloat16_config.enabled
    offload = ds.zero_config.offload_optimizer
    assert (str(getattr(offload.device, "value", offload.device)) if offload else "none") == \
        layout.offload_optimizer.value
    assert ds.activation_checkpointing_config.partition_activations is False


def test_deepspeed_batch_arithmetic_is_checked_by_deepspeed(monkeypatch: pytest.MonkeyPatch) -> None:
    """DeepSpeed itself rejects our batch sizes on a different data-parallel world: the test above can fail."""
    config_module = pytest.importorskip("deepspeed.runtime.config")
    layout = DEEPSPEED_LAYOUTS[0]
    config = json.loads(export_training("deepspeed", _training(layout)).files["ds_config.json"])
    assert config["gradient_accumulation_steps"] == 4  # 128 / (2 × 16), hand-derived
    monkeypatch.setattr(config_module.dist, "get_rank", lambda *a, **k: 0)
    monkeypatch.setattr(config_module.dist, "get_world_size", lambda *a, **k: layout.dp * 2)
    with pytest.raises(AssertionError, match="Check batch related parameters"):
        config_module.DeepSpeedConfig(config)


def test_deepspeed_zero_section_is_valid_for_its_pydantic_model() -> None:
    zero_module = pytest.importorskip("deepspeed.runtime.zero.config")
    config = json.loads(export_training("deepspeed", _training(DEEPSPEED_LAYOUTS[1])).files["ds_config.json"])
    zero = zero_module.DeepSpeedZeroConfig(**config["zero_optimization"])  # extra="forbid": unknown keys fail
    assert zero.stage == 2 and str(zero.offload_optimizer.nvme_path) == "/local_nvme"


def test_deepspeed_refuses_what_its_config_cannot_express() -> None:
    with pytest.raises(LayoutError, match="megatron"):
        export_training("deepspeed", _training(Layout(tp=2, dp=4)))
    with pytest.raises(LayoutError, match="fp8"):
        export_training("deepspeed", _training(Layout(dp=2), precision=PrecisionMode.FP8))
    with pytest.raises(LayoutError, match="hybrid"):
        export_training("deepspeed", _training(Layout(dp=16, zero=3, shard_group=8)))


# ---- accelerate / FSDP: parsed by ClusterConfig, the launcher, and FullyShardedDataParallelPlugin -----------

@pytest.mark.parametrize(("layout", "strategy"), [
    (Layout(dp=16, zero=3, micro_batch=2, global_batch=128, recompute=Recompute.FULL), "FULL_SHARD"),
    (Layout(dp=16, zero=3, shard_group=8), "HYBRID_SHARD"),
    (Layout(dp=8, zero=2, offload_params=Offload.NONE), "SHARD_GRAD_OP"),
    (Layout(dp=4, zero=3, offload_params=Offload.CPU, offload_optimizer=Offload.CPU), "FULL_SHARD"),
])
def test_accelerate_config_goes_through_accelerates_launcher(layout: Layout, strategy: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config_args = pytest.importorskip("accelerate.commands.config.config_args")
    launch = pytest.importorskip("accelerate.commands.launch")
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    path = tmp_path / "accelerate_config.yaml"
    path.write_text(export_training("accelerate", _training(layout)).files["accelerate_config.yaml"])
    cluster = config_args.ClusterConfig.from_yaml_file(str(path))  # refuses unknown top-level keys
    assert cluster.num_processes == layout.gpus and cluster.mixed_precision == "bf16"
    args = launch.launch_command_parser().parse_args(["--config_file", str(path), "train.py"])
    args, _, _ = launch._validate_launch_command(args)
    env = prepare_multi_gpu_env(args)
    assert env["FSDP_SHARDING_STRATEGY"] == strategy
    for name, value in env.items():
        if name.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(name, value)
    # the plugin refuses sync_module_states on a CPU-only machine (it needs a GPU to broadcast from)
    monkeypatch.setenv("FSDP_SYNC_MODULE_STATES", "false")
    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "false")
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.sharding_strategy.name == strategy
    assert plugin.cpu_offload.offload_params is (layout.offload_params is Offload.CPU)
    assert plugin.activation_checkpointing is (layout.recompute is not Recompute.NONE)


def test_torchrun_environment_is_what_accelerate_launch_would_set(tmp_path: Path) -> None:
    """The torchrun target exports the FSDP settings as variables: each equals what accelerate's own launcher
    derives from the accelerate target's YAML for the same plan."""
    launch = pytest.importorskip("accelerate.commands.launch")
    from accelerate.utils.launch import prepare_multi_gpu_env

    plan = _training(Layout(dp=16, zero=3, shard_group=8, recompute=Recompute.FULL))
    path = tmp_path / "accelerate_config.yaml"
    path.write_text(export_training("accelerate", plan).files["accelerate_config.yaml"])
    args, _, _ = launch._validate_launch_command(
        launch.launch_command_parser().parse_args(["--config_file", str(path), "train.py"]))
    expected = prepare_multi_gpu_env(args)
    script = export_training("torchrun", plan).files["launch.sh"]
    exported = dict(line.removeprefix("export ").split("=", 1) for line in script.splitlines()
                    if line.startswith("export "))
    assert exported["FSDP_SHARDING_STRATEGY"] == "HYBRID_SHARD"
    assert {name: expected[name] for name in exported} == exported
    assert _values(script, "--nnodes") == ["2"] and "torchrun" in script


def test_accelerate_refuses_optimizer_only_offload_and_model_parallelism() -> None:
    with pytest.raises(LayoutError, match="deepspeed"):
        export_training("accelerate", _training(Layout(dp=4, zero=3, offload_optimizer=Offload.CPU)))
    with pytest.raises(LayoutError, match="megatron"):
        export_training("accelerate", _training(Layout(pp=2, dp=4)))


# ---- Megatron-LM: documented argument names ----------------------------------------------------------------

# Every flag the export may emit, with its choices (None: takes a value; FLAG: store_true), read from the parser
# that megatron/training/arguments.py builds (add_megatron_arguments, including the TransformerConfig fields it
# registers through ArgumentGroupFactory), NVIDIA/Megatron-LM commit d98e8a64 (2026-08-22).
FLAG = "store_true"
MEGATRON_ARGS: dict[str, object] = {
    "--tensor-model-parallel-size": None, "--pipeline-model-parallel-size": None, "--context-parallel-size": None,
    "--expert-model-parallel-size": None, "--micro-batch-size": None, "--global-batch-size": None,
    "--seq-length": None, "--num-layers-per-virtual-pipeline-stage": None, "--sequence-parallel": FLAG,
    "--use-distributed-optimizer": FLAG, "--optimizer-cpu-offload": FLAG,
    "--recompute-granularity": ("full", "selective"), "--recompute-method": ("uniform", "block"),
    "--recompute-num-layers": None, "--bf16": FLAG, "--fp16": FLAG, "--fp8-format": ("e4m3", "hybrid"),
    "--train-iters": None, "--num-layers": None, "--hidden-size": None, "--num-attention-heads": None,
    "--kv-channels": None, "--max-position-embeddings": None, "--group-query-attention": FLAG,
    "--num-query-groups": None, "--ffn-hidden-size": None, "--num-experts": None, "--moe-router-topk": None,
    "--moe-ffn-hidden-size": None, "--moe-shared-expert-intermediate-size": None,
    "--normalization": ("LayerNorm", "RMSNorm"), "--swiglu": FLAG,
    "--position-embedding-type": ("learned_absolute", "rope", "yarn", "mrope", "relative", "none"),
    "--untie-embeddings-and-output-weights": FLAG, "--disable-bias-linear": FLAG, "--add-qkv-bias": FLAG,
    "--tokenizer-type": ("GPT2BPETokenizer", "SentencePieceTokenizer", "HuggingFaceTokenizer", "NullTokenizer"),
    "--tokenizer-model": None, "--data-path": None,
}


def _check_megatron(text: str) -> dict[str, str | None]:
    """Parse the args file as Megatron's argparse would for these flags; returns flag → value."""
    words = shlex.split(text.replace("\n", " "))
    parsed: dict[str, str | None] = {}
    i = 0
    while i < len(words):
        flag = words[i]
        assert flag in MEGATRON_ARGS, f"{flag} is not a Megatron-LM argument"
        kind = MEGATRON_ARGS[flag]
        if kind == FLAG:
            parsed[flag], i = None, i + 1
            continue
        value = words[i + 1]
        assert not value.startswith("--"), f"{flag} needs a value"
        if isinstance(kind, tuple):
            assert value in kind, f"{flag} {value} is not one of {kind}"
        parsed[flag], i = value, i + 2
    return parsed


def test_megatron_arguments_are_megatrons_and_carry_the_layout() -> None:
    layout = Layout(tp=8, pp=4, dp=4, vp=2, schedule=PipelineSchedule.INTERLEAVED, sp=True, zero=1,
                    global_batch=512, recompute=Recompute.SELECTIVE)
    export = export_training("megatron", _training(layout, model="llama-3.1-70b",
                                                   precision=PrecisionMode.MIXED_FP32_GRADS, tokens=1e12))
    args = _check_megatron(export.files["megatron_args.txt"])
    assert args["--tensor-model-parallel-size"] == "8" and args["--pipeline-model-parallel-size"] == "4"
    assert args["--num-layers-per-virtual-pipeline-stage"] == "10"  # 80 / (4 × 2)
    assert args["--train-iters"] == "476838"  # ceil(1e12 / (512 × 4096))
    assert args["--recompute-granularity"] == "selective"
    assert {"--sequence-parallel", "--use-distributed-optimizer", "--bf16", "--swiglu"} <= set(args)
    assert args["--num-query-groups"] == "8" and args["--ffn-hidden-size"] == "28672"
    torchrun = {"--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--master-port"}
    assert set(_flags(export.command)) - torchrun <= set(MEGATRON_ARGS)
    assert _values(export.command, "--nnodes") == ["16"]  # 128 GPUs / 8 per node


def test_megatron_moe_fp8_and_recompute_full() -> None:
    layout = Layout(tp=2, pp=2, dp=8, ep=8, zero=1, micro_batch=2, global_batch=256, recompute=Recompute.FULL,
                    offload_optimizer=Offload.CPU)
    export = export_training("megatron", _training(layout, model="mixtral-8x7b", precision=PrecisionMode.FP8))
    args = _check_megatron(export.files["megatron_args.txt"])
    assert args["--expert-model-parallel-size"] == "8" and args["--num-experts"] == "8"
    assert args["--moe-router-topk"] == "2" and args["--fp8-format"] == "hybrid"
    assert args["--recompute-method"] == "uniform" and "--optimizer-cpu-offload" in args


def test_a_note_says_when_the_estimate_assumed_another_framework() -> None:
    layout = Layout(tp=2, dp=4, zero=1)
    assert any("--framework megatron" in n for n in export_training("megatron", _training(layout)).notes)
    megatron_job = TrainingJob(seq=4096, precision=PrecisionMode.MIXED_FP32_GRADS, framework=Framework.MEGATRON)
    plan = TrainingPlan(spec=LLAMA_8B, job=megatron_job, layout=layout, accelerator=H100, model_id="m")
    assert not any("--framework" in n for n in export_training("megatron", plan).notes)
    assert not any("--framework" in n for n in export_training("accelerate", _training(Layout(dp=4, zero=3))).notes)


def test_megatron_refuses_zero3() -> None:
    with pytest.raises(LayoutError, match="distributed optimizer"):
        export_training("megatron", _training(Layout(dp=8, zero=3)))


# ---- vLLM, SGLang, TensorRT-LLM: documented argument names -------------------------------------------------

# vllm-project/vllm vllm/engine/arg_utils.py: EngineArgs fields (the CLI is their kebab-case spelling; booleans
# also take --no-…) and vllm/entrypoints/openai/cli_args.py (--port).
VLLM_ARGS = {"tensor_parallel_size", "data_parallel_size", "enable_expert_parallel", "gpu_memory_utilization",
             "max_num_seqs", "max_num_batched_tokens", "block_size", "max_model_len", "dtype", "quantization",
             "kv_cache_dtype", "enable_prefix_caching", "enable_chunked_prefill", "enforce_eager",
             "kv_transfer_config", "port"}
# sgl-project/sglang python/sglang/srt/server_args.py (ServerArgs.add_cli_args) and
# docs/advanced_features/pd_disaggregation.md (router: python -m sglang_router.launch_router).
SGLANG_ARGS = {"--model-path", "--tp-size", "--dp-size", "--ep-size", "--mem-fraction-static",
               "--max-running-requests", "--chunked-prefill-size", "--page-size", "--context-length", "--dtype",
               "--quantization", "--kv-cache-dtype", "--disable-radix-cache", "--disable-cuda-graph",
               "--base-gpu-id", "--port", "--disaggregation-mode", "--disaggregation-transfer-backend",
               "--disaggregation-bootstrap-port"}
SGLANG_ROUTER_ARGS = {"--pd-disaggregation", "--prefill", "--decode", "--host", "--port"}
# NVIDIA/TensorRT-LLM tensorrt_llm/commands/serve.py (trtllm-serve click options) and
# tensorrt_llm/llmapi/llm_args.py (KvCacheConfig, CacheTransceiverConfig, TorchLlmArgs fields).
TRTLLM_ARGS = {"--backend", "--tp_size", "--ep_size", "--max_batch_size", "--max_num_tokens", "--max_seq_len",
               "--kv_cache_free_gpu_memory_fraction", "--extra_llm_api_options", "--host", "--port"}
TRTLLM_OPTIONS = {"kv_cache_config", "dtype", "enable_chunked_prefill", "cuda_graph_config",
                  "cache_transceiver_config", "disable_overlap_scheduler"}
TRTLLM_KV_CACHE = {"free_gpu_memory_fraction", "dtype", "tokens_per_block", "enable_block_reuse"}


def _vllm_field(flag: str) -> str:
    return flag.removeprefix("--").removeprefix("no-").replace("-", "_")


def test_vllm_flags_are_engine_args_and_match_the_simulated_settings() -> None:
    plan = _serving("vllm", tp=2, replicas=2, weights_format=parse_number_format("fp8"),
                    kv_format=parse_number_format("fp8"), knobs=EngineKnobs(enable_prefix_caching=False))
    export = export_serving("vllm", plan)
    assert {_vllm_field(f) for f in _flags(export.command)} <= VLLM_ARGS
    setting = engine_setting(get_engine("vllm"), H100, tp=2)
    assert _values(export.command, "--gpu-memory-utilization") == [f"{setting.memory_fraction:g}"]
    assert _values(export.command, "--max-num-seqs") == [str(setting.max_num_seqs)]
    assert _values(export.command, "--max-num-batched-tokens") == [str(setting.chunk_tokens)]
    assert _values(export.command, "--data-parallel-size") == ["2"]
    assert _values(export.command, "--quantization") == ["fp8"]
    assert "--no-enable-prefix-caching" in _flags(export.command)


def test_vllm_disaggregation_starts_p_prefill_and_d_decode_instances() -> None:
    script = export_serving("vllm", _serving("vllm", tp=2, pd=(1, 3))).files["launch.sh"]
    lines = [line for line in script.split("\n&") if "vllm serve" in line]
    assert len(_values(script, "--kv-transfer-config")) == 4
    assert json.loads(_values(script, "--kv-transfer-config")[0])["kv_connector"] == "NixlConnector"
    assert _values(script, "--port")[:4] == ["8100", "8200", "8201", "8202"] and lines
    assert "CUDA_VISIBLE_DEVICES=6,7" in script  # the fourth tp-2 instance on one 8-GPU node
    assert not any("nodes" in n for n in export_serving("vllm", _serving("vllm", tp=2, pd=(1, 3))).notes)
    wide = export_serving("vllm", _serving("vllm", tp=4, pd=(1, 2)))  # 3 × 4 GPUs: 2 nodes of 8
    assert any("need 2 nodes" in n for n in wide.notes) and "# decode instance 1 (node 1)" in wide.files["launch.sh"]


def test_sglang_flags_and_pd_router() -> None:
    plan = _serving("sglang", tp=2, pd=(2, 2), kv_format=parse_number_format("fp8"))
    script = export_serving("sglang", plan).files["launch.sh"]
    servers, router = script.split("sglang_router.launch_router")
    assert set(_flags(servers)) <= SGLANG_ARGS
    assert set(_flags(router)) <= SGLANG_ROUTER_ARGS
    assert _values(servers, "--disaggregation-mode") == ["prefill", "prefill", "decode", "decode"]
    assert len(_values(router, "--prefill")) == 2 and len(_values(router, "--decode")) == 2
    fraction = engine_setting(get_engine("sglang"), H100, tp=2).memory_fraction
    assert set(_values(servers, "--mem-fraction-static")) == {f"{fraction:g}"}
    assert set(_values(servers, "--kv-cache-dtype")) == {"fp8_e4m3"}
    assert _values(servers, "--base-gpu-id") == ["0", "2", "4", "6"]
    assert _values(servers, "--disaggregation-bootstrap-port") == ["8998", "8999"]  # one per prefill server
    assert "--prefill http://127.0.0.1:30101 8999" in " ".join(shlex.split(router.replace("\\\n", " ")))


def test_trtllm_flags_and_yaml_fields() -> None:
    plan = _serving("trtllm", tp=2, pd=(1, 1), kv_format=parse_number_format("fp8"),
                    knobs=EngineKnobs(enforce_eager=True))
    export = export_serving("trtllm", plan)
    script = export.files["launch.sh"]
    servers = script.split("trtllm-serve disaggregated")[0]
    assert set(_flags(servers)) <= TRTLLM_ARGS
    for name in ("ctx_extra_options.yaml", "gen_extra_options.yaml"):
        options = yaml.safe_load(export.files[name])
        assert set(options) <= TRTLLM_OPTIONS and set(options["kv_cache_config"]) <= TRTLLM_KV_CACHE
        assert options["kv_cache_config"]["dtype"] == "fp8" and options["cuda_graph_config"] is None
    assert yaml.safe_load(export.files["ctx_extra_options.yaml"])["disable_overlap_scheduler"] is True
    disagg = yaml.safe_load(export.files["disagg_config.yaml"])
    assert disagg["context_servers"]["urls"] == ["localhost:8100"]
    assert disagg["generation_servers"]["num_instances"] == 1


def test_serving_export_refuses_an_engine_it_was_not_estimated_for() -> None:
    with pytest.raises(SpecError, match="--engine sglang"):
        export_serving("sglang", _serving("vllm"))
    with pytest.raises(NotFound, match="serving targets"):
        export_serving("ollama", _serving("vllm"))


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("export", [
    export_training("deepspeed", _training(DEEPSPEED_LAYOUTS[0])),
    export_training("accelerate", _training(Layout(dp=16, zero=3))),
    export_training("torchrun", _training(Layout(dp=16, zero=3))),
    export_training("megatron", _training(Layout(tp=2, pp=2, dp=4, zero=1))),
    export_serving("vllm", _serving("vllm", pd=(1, 1))),
    export_serving("sglang", _serving("sglang", replicas=2)),
    export_serving("trtllm", _serving("trtllm", replicas=3)),
], ids=lambda e: e.target)
def test_launch_scripts_are_valid_bash(export: Export) -> None:
    subprocess.run(["bash", "-n"], input=export.files["launch.sh"], text=True, check=True)


# ---- the CLI: --export TARGET DIR ----------------------------------------------------------------------------

TRAIN = ["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--zero", "3"]


def test_cli_writes_the_files_and_refuses_a_folder_with_files(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    assert main([*TRAIN, "--export", "deepspeed", str(out), "--json"]) == 0
    block = json.loads(capsys.readouterr().out)["export"]
    assert block["files"] == ["ds_config.json", "launch.sh"] and sorted(p.name for p in out.iterdir()) == block["files"]
    assert json.loads((out / "ds_config.json").read_text())["zero_optimization"]["stage"] == 3
    assert main([*TRAIN, "--export", "deepspeed", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--force" in err and len(err.splitlines()) == 1
    assert main([*TRAIN, "--export", "deepspeed", str(out), "--force"]) == 0


def test_cli_leaves_nothing_behind_when_the_export_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    assert main([*TRAIN[:-2], "--tp", "2", "--export", "deepspeed", str(out)]) == 2
    assert "megatron" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert main([*TRAIN, "--export", "nemo", str(out)]) == 2
    assert "unknown --export target" in capsys.readouterr().err


def test_cli_simulate_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "serve"
    argv = ["simulate", "llama-3.1-8b", "--gpu", "h100", "--engine", "sglang", "--rate", "2", "--requests", "20",
            "--prompt", "512", "--output", "128", "--export", "sglang", str(out), "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["export"]["target"] == "sglang"
    script = (out / "launch.sh").read_text()
    assert _values(script, "--context-length") == ["640"]  # the longest request simulated: 512 + 128
    assert _values(script, "--model-path") == ["meta-llama/Llama-3.1-8B"]
