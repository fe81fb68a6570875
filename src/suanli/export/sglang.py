"""SGLang: ``python -m sglang.launch_server`` lines, with prefill/decode servers and the router when
disaggregated.

Flag names are SGLang's (sgl-project/sglang python/sglang/srt/server_args.py, ``ServerArgs.add_cli_args``):
``--model-path``, ``--tp-size``, ``--dp-size``, ``--ep-size``, ``--mem-fraction-static``,
``--max-running-requests``, ``--chunked-prefill-size`` (-1 turns chunking off), ``--page-size``,
``--context-length``, ``--dtype``, ``--quantization``, ``--kv-cache-dtype``, ``--disable-radix-cache``,
``--disable-cuda-graph``, ``--base-gpu-id``, ``--port``, ``--disaggregation-mode {prefill,decode}``,
``--disaggregation-transfer-backend {mooncake,nixl,…}``, ``--disaggregation-bootstrap-port``. The PD layout
follows SGLang's guide (docs/advanced_features/pd_disaggregation.md): one server per role and
``python -m sglang_router.launch_router --pd-disaggregation --prefill URL BOOTSTRAP_PORT … --decode URL …`` in front.
"""

from __future__ import annotations

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
PORT, PD_PREFILL_PORT, PD_DECODE_PORT = 30000, 30100, 30200
BOOTSTRAP_PORT = 8998  # SGLang's default --disaggregation-bootstrap-port; each prefill server on a host needs its own
ROUTER_PORT = 8000
TRANSFER_BACKEND = "nixl"  # SGLang's default is mooncake; NIXL needs no RDMA device name


def sglang_export(plan: ServingPlan) -> Export:
    """The SGLang launch script for ``plan`` (module docstring)."""
    d = plan.deployment
    args, notes = server_args(plan)
    launcher = ["python", "-m", "sglang.launch_server", "--model-path", plan.model_id]
    if d.pd is None:
        if d.replicas > 1:
            args += ["--dp-size", str(d.replicas)]
        command = shell_line([*launcher, *args, "--port", str(PORT)])
        body = [command]
    else:
        body, command = _pd_body(plan, launcher, args, *d.pd), "bash launch.sh"
        notes += placement_notes(plan, sum(d.pd))
        notes.append(f"disaggregation uses the {TRANSFER_BACKEND} transfer backend (pip install nixl) and "
                     "sglang-router (pip install sglang-router)")
    if d.gpus > plan.gpus_per_node and d.pd is None:
        notes.append(f"{d.gpus} GPUs span {-(-d.gpus // plan.gpus_per_node)} nodes: add --nnodes, --node-rank and "
                     "--dist-init-addr on each node")
    launch = script(body, header=f"SGLang serving {plan.spec.name} on {d.gpus}× {d.accelerator.key} "
                    "(written by suanli)")
    return Export(target="sglang", files={LAUNCH_FILE: launch}, command=command, notes=tuple(notes))


def server_args(plan: ServingPlan) -> tuple[list[str], list[str]]:
    d, s = plan.deployment, settings(plan, "sglang")
    k = d.knobs
    args = ["--tp-size", str(d.tp), "--mem-fraction-static", f"{s.memory_fraction:g}",
            "--page-size", str(s.block_size), "--context-length", str(s.max_model_len)]
    if k.max_num_seqs is not None:
        args += ["--max-running-requests", str(k.max_num_seqs)]
    chunk = -1 if k.enable_chunked_prefill is False else s.chunk_tokens
    if chunk is not None:
        args += ["--chunked-prefill-size", str(chunk)]
    if d.ep > 1:
        args += ["--ep-size", str(d.ep)]
    dtype, method = weight_method(d.weights_format, QUANTIZATION)
    if dtype:
        args += ["--dtype", dtype]
    if method:
        args += ["--quantization", method]
    notes = unsupported_format_note(d.weights_format, method, "SGLang")
    if kv_fp8(d.kv_format):
        args += ["--kv-cache-dtype", "fp8_e4m3"]
    if k.enable_prefix_caching is False:
        args.append("--disable-radix-cache")
    if k.enforce_eager:
        args.append("--disable-cuda-graph")
    return args, notes


def _pd_body(plan: ServingPlan, launcher: list[str], args: list[str], prefill: int, decode: int) -> list[str]:
    body: list[str] = []
    urls: dict[str, list[list[str]]] = {"prefill": [], "decode": []}
    for i in pd_instances(plan, prefill, decode, prefill_port=PD_PREFILL_PORT, decode_port=PD_DECODE_PORT):
        role = "prefill" if i.prefill else "decode"
        bootstrap = ["--disaggregation-bootstrap-port", str(BOOTSTRAP_PORT + i.rank)] if i.prefill else []
        urls[role].append([f"http://127.0.0.1:{i.port}", *bootstrap[1:]])
        line = shell_line([*launcher, *args, "--port", str(i.port), "--base-gpu-id", i.devices.split(",")[0],
                           "--disaggregation-mode", role, "--disaggregation-transfer-backend", TRANSFER_BACKEND,
                           *bootstrap])
        body.append(f"# {role} server {i.rank} (node {i.node})\n{line} &")
    router = ["python", "-m", "sglang_router.launch_router", "--pd-disaggregation"]
    for url in urls["prefill"]:
        router += ["--prefill", *url]
    for url in urls["decode"]:
        router += ["--decode", *url]
    body.append(shell_line([*router, "--host", "0.0.0.0", "--port", str(ROUTER_PORT)]) + " &\nwait")
    return body
