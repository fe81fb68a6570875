"""vLLM: ``vllm serve`` lines for a deployment, with prefill/decode instances when it is disaggregated.

Flag names are vLLM's (vllm-project/vllm vllm/engine/arg_utils.py, ``EngineArgs``; the CLI spells each field in
kebab case): ``--tensor-parallel-size``, ``--data-parallel-size``, ``--enable-expert-parallel``,
``--gpu-memory-utilization``, ``--max-num-seqs``, ``--max-num-batched-tokens``, ``--block-size``,
``--max-model-len``, ``--dtype``, ``--quantization``, ``--kv-cache-dtype``, ``--enable-prefix-caching`` /
``--no-enable-prefix-caching``, ``--enable-chunked-prefill`` / ``--no-enable-chunked-prefill``,
``--enforce-eager``, ``--port``, ``--kv-transfer-config``. Disaggregated prefill follows vLLM's NixlConnector
guide (docs/features/nixl_connector_usage.md): each instance gets
``--kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'`` and its own
``VLLM_NIXL_SIDE_CHANNEL_PORT``, and a proxy routes each request to a prefiller then a decoder.

vLLM's expert parallelism has no size of its own: ``--enable-expert-parallel`` splits the experts over
tp × dp ranks (vllm/config/parallel.py).
"""

from __future__ import annotations

import json

from suanli.export.common import LAUNCH_FILE, Export, script, shell_line
from suanli.export.serving import (
    ServingPlan,
    kv_fp8,
    pd_instances,
    placement_notes,
    settings,
    unsupported_format_note,
    weight_method,
)

QUANTIZATION = {"fp8": "fp8", "awq": "awq", "gptq": "gptq", "nf4": "bitsandbytes", "mxfp4": "mxfp4"}
PORT, PD_PREFILL_PORT, PD_DECODE_PORT, SIDE_CHANNEL_PORT = 8000, 8100, 8200, 5600
NIXL = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"}, separators=(",", ":"))


def vllm_export(plan: ServingPlan) -> Export:
    """The vLLM launch script for ``plan`` (module docstring)."""
    d = plan.deployment
    args, notes = server_args(plan)
    if d.pd is None:
        if d.replicas > 1:
            args += ["--data-parallel-size", str(d.replicas)]
        command = shell_line(["vllm", "serve", plan.model_id, *args, "--port", str(PORT)])
        body = [command]
    else:
        body = _pd_body(plan, args, *d.pd)
        notes += placement_notes(plan, sum(d.pd))
        command = "bash launch.sh"
        notes.append("prefill/decode disaggregation needs the nixl package (pip install nixl) and vLLM's proxy "
                     "(tests/v1/kv_connector/nixl_integration/toy_proxy_server.py in the vLLM repository)")
    if d.gpus > plan.gpus_per_node and d.pd is None:
        notes.append(f"{d.gpus} GPUs span {-(-d.gpus // plan.gpus_per_node)} nodes: start vLLM on a Ray cluster "
                     "(--distributed-executor-backend ray) or one server per node")
    launch = script(body, header=f"vLLM serving {plan.spec.name} on {d.gpus}× {d.accelerator.key} "
                    "(written by suanli)")
    return Export(target="vllm", files={LAUNCH_FILE: launch}, command=command, notes=tuple(notes))


def server_args(plan: ServingPlan) -> tuple[list[str], list[str]]:
    """The flags every instance of this deployment takes, and notes."""
    d, s = plan.deployment, settings(plan, "vllm")
    args = ["--tensor-parallel-size", str(d.tp), "--gpu-memory-utilization", f"{s.memory_fraction:g}",
            "--block-size", str(s.block_size), "--max-model-len", str(s.max_model_len)]
    if s.max_num_seqs is not None:
        args += ["--max-num-seqs", str(s.max_num_seqs)]
    if s.chunk_tokens is not None:
        args += ["--max-num-batched-tokens", str(s.chunk_tokens)]
    notes: list[str] = []
    if d.ep > 1:
        args.append("--enable-expert-parallel")
        if d.ep != d.tp:
            notes.append(f"vLLM splits experts over tp × dp ranks; the estimate used ep={d.ep} with tp={d.tp}")
    dtype, method = weight_method(d.weights_format, QUANTIZATION)
    if dtype:
        args += ["--dtype", dtype]
    if method:
        args += ["--quantization", method]
    notes += unsupported_format_note(d.weights_format, method, "vLLM")
    if kv_fp8(d.kv_format):
        args += ["--kv-cache-dtype", "fp8"]
    k = d.knobs
    if k.enable_prefix_caching is not None:
        args.append("--enable-prefix-caching" if k.enable_prefix_caching else "--no-enable-prefix-caching")
    if k.enable_chunked_prefill is not None:
        args.append("--enable-chunked-prefill" if k.enable_chunked_prefill else "--no-enable-chunked-prefill")
    if k.enforce_eager:
        args.append("--enforce-eager")
    return args, notes


def _pd_body(plan: ServingPlan, args: list[str], prefill: int, decode: int) -> list[str]:
    body: list[str] = []
    hosts: dict[str, list[int]] = {"prefill": [], "decode": []}
    for i in pd_instances(plan, prefill, decode, prefill_port=PD_PREFILL_PORT, decode_port=PD_DECODE_PORT):
        role = "prefill" if i.prefill else "decode"
        hosts[role].append(i.port)
        env = [f"CUDA_VISIBLE_DEVICES={i.devices}", f"VLLM_NIXL_SIDE_CHANNEL_PORT={SIDE_CHANNEL_PORT + i.index}"]
        line = shell_line([*env, "vllm", "serve", plan.model_id, *args, "--port", str(i.port),
                           "--kv-transfer-config", NIXL])
        body.append(f"# {role} instance {i.rank} (node {i.node})\n{line} &")
    proxy = shell_line(["python", "${VLLM_REPO:?set VLLM_REPO to a vLLM checkout}/tests/v1/kv_connector/"
                        "nixl_integration/toy_proxy_server.py", "--port", str(PORT),
                        "--prefiller-hosts", *["localhost"] * prefill,
                        "--prefiller-ports", *map(str, hosts["prefill"]),
                        "--decoder-hosts", *["localhost"] * decode, "--decoder-ports", *map(str, hosts["decode"])])
    body.append(f"# the proxy sends each request to a prefiller, then to a decoder\n{proxy} &\nwait")
    return body
