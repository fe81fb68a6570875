"""TensorRT-LLM: ``trtllm-serve`` lines plus an ``--extra_llm_api_options`` YAML, and the disaggregated layout.

Names are TensorRT-LLM's (NVIDIA/TensorRT-LLM): the ``trtllm-serve`` options in tensorrt_llm/commands/serve.py
(``--backend``, ``--tp_size``, ``--ep_size``, ``--max_batch_size``, ``--max_num_tokens``, ``--max_seq_len``,
``--kv_cache_free_gpu_memory_fraction``, ``--extra_llm_api_options``, ``--host``, ``--port``), and the LLM API
fields the YAML overrides, in tensorrt_llm/llmapi/llm_args.py: ``kv_cache_config`` (``KvCacheConfig``:
``free_gpu_memory_fraction``, ``dtype``, ``tokens_per_block``, ``enable_block_reuse``), ``enable_chunked_prefill``,
``dtype``, ``cuda_graph_config``, ``disable_overlap_scheduler`` and ``cache_transceiver_config.backend``. The
disaggregated layout follows examples/disaggregated/README.md: context and generation servers, then
``trtllm-serve disaggregated -c disagg_config.yaml`` (``hostname``, ``port``, ``backend``, ``context_servers`` and
``generation_servers`` with ``num_instances`` and ``urls``) in front.

Quantized weights come from the checkpoint (a ModelOpt export carries ``hf_quant_config.json``); trtllm-serve
has no switch that quantizes on load.
"""

from __future__ import annotations

from typing import Any

from suanli.export.accelerate import to_yaml
from suanli.export.common import LAUNCH_FILE, Export, script, shell_line
from suanli.export.serving import (
    ServingPlan,
    instance_gpus,
    kv_fp8,
    pd_instances,
    placement_notes,
    settings,
    weight_method,
)

OPTIONS_FILE = "extra_llm_api_options.yaml"
CONTEXT_FILE, GENERATION_FILE, DISAGG_FILE = "ctx_extra_options.yaml", "gen_extra_options.yaml", "disagg_config.yaml"
PORT, CONTEXT_PORT, GENERATION_PORT = 8000, 8100, 8200


def trtllm_export(plan: ServingPlan) -> Export:
    """The TensorRT-LLM launch script and YAML files for ``plan`` (module docstring)."""
    d = plan.deployment
    args, options, notes = _server(plan)
    serve = ["trtllm-serve", plan.model_id, "--backend", "pytorch", *args]
    files: dict[str, str] = {}
    if d.pd is None:
        files[OPTIONS_FILE] = to_yaml(options)
        lines = []
        for index in range(d.replicas):
            node, devices = instance_gpus(plan, index)
            env = [f"CUDA_VISIBLE_DEVICES={devices}"] if d.replicas > 1 else []
            line = shell_line([*env, *serve, "--extra_llm_api_options", OPTIONS_FILE, "--port", str(PORT + index)])
            lines.append(f"# replica {index} (node {node})\n{line}" + (" &" if d.replicas > 1 else ""))
        if d.replicas > 1:
            lines.append("wait")
            notes.append(f"{d.replicas} replicas listen on ports {PORT}-{PORT + d.replicas - 1}: put a load "
                         "balancer in front")
            command = "bash launch.sh"
        else:
            command = lines[0].split("\n", 1)[1]
    else:
        lines, command = _pd(plan, serve, options, files, *d.pd), "bash launch.sh"
    notes += placement_notes(plan, sum(d.pd) if d.pd else d.replicas)
    files[LAUNCH_FILE] = script(lines, header=f"TensorRT-LLM serving {plan.spec.name} on {d.gpus}× "
                                f"{d.accelerator.key} (written by suanli)")
    return Export(target="trtllm", files=files, command=command, notes=tuple(notes))


def _server(plan: ServingPlan) -> tuple[list[str], dict[str, Any], list[str]]:
    d, s = plan.deployment, settings(plan, "trtllm")
    args = ["--tp_size", str(d.tp), "--max_seq_len", str(s.max_model_len),
            "--kv_cache_free_gpu_memory_fraction", f"{s.memory_fraction:g}"]
    if s.max_num_seqs is not None:
        args += ["--max_batch_size", str(s.max_num_seqs)]
    if s.chunk_tokens is not None:
        args += ["--max_num_tokens", str(s.chunk_tokens)]
    if d.ep > 1:
        args += ["--ep_size", str(d.ep)]
    kv: dict[str, Any] = {"free_gpu_memory_fraction": s.memory_fraction, "tokens_per_block": s.block_size}
    if kv_fp8(d.kv_format):
        kv["dtype"] = "fp8"
    if d.knobs.enable_prefix_caching is not None:
        kv["enable_block_reuse"] = d.knobs.enable_prefix_caching
    options: dict[str, Any] = {"kv_cache_config": kv}
    dtype, _ = weight_method(d.weights_format, {})
    if dtype:
        options["dtype"] = dtype
    if d.knobs.enable_chunked_prefill:
        options["enable_chunked_prefill"] = True
    notes = []
    if d.weights_format is not None and dtype is None:
        notes.append(f"TensorRT-LLM reads {d.weights_format.key} weights from a quantized checkpoint (NVIDIA "
                     "ModelOpt export); point MODEL at one")
    if d.knobs.enforce_eager:
        options["cuda_graph_config"] = None  # null: no CUDA graphs
    return args, options, notes


def _pd(plan: ServingPlan, serve: list[str], options: dict[str, Any], files: dict[str, str], prefill: int,
        decode: int) -> list[str]:
    transfer = {"cache_transceiver_config": {"backend": "DEFAULT"}}
    files[CONTEXT_FILE] = to_yaml({**options, **transfer, "disable_overlap_scheduler": True})
    files[GENERATION_FILE] = to_yaml({**options, **transfer})
    lines: list[str] = []
    urls: dict[str, list[str]] = {"context": [], "generation": []}
    for i in pd_instances(plan, prefill, decode, prefill_port=CONTEXT_PORT, decode_port=GENERATION_PORT):
        role = "context" if i.prefill else "generation"
        urls[role].append(f"localhost:{i.port}")
        line = shell_line([f"CUDA_VISIBLE_DEVICES={i.devices}", *serve, "--host", "localhost", "--port", str(i.port),
                           "--extra_llm_api_options", CONTEXT_FILE if i.prefill else GENERATION_FILE])
        lines.append(f"# {role} server {i.rank} (node {i.node})\n{line} &")
    files[DISAGG_FILE] = _disagg_yaml(urls["context"], urls["generation"])
    lines.append(shell_line(["trtllm-serve", "disaggregated", "-c", DISAGG_FILE]) + " &\nwait")
    return lines


def _disagg_yaml(context: list[str], generation: list[str]) -> str:
    def servers(name: str, urls: list[str]) -> str:
        listed = "".join(f"    - \"{u}\"\n" for u in urls)
        return f"{name}:\n  num_instances: {len(urls)}\n  urls:\n{listed}"

    return f"hostname: localhost\nport: {PORT}\nbackend: pytorch\n" + servers("context_servers", context) + \
        servers("generation_servers", generation)
