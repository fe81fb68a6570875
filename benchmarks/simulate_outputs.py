"""Every simulator result a speed change must not move: ``suanli simulate --json`` of a fixed set of workloads.

A change meant only to make the simulator faster should leave each of these outputs byte-identical. Dump them
from a copy of the code before the change and from the code after, and compare::

    git archive HEAD src | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/src .venv/bin/python benchmarks/simulate_outputs.py /tmp/before.json
    .venv/bin/python benchmarks/simulate_outputs.py /tmp/after.json --against /tmp/before.json

The workloads cover each path of the step loop: closed and open loop (Poisson, bursty), replicas behind each
router, prefix caching, prefill/decode disaggregation, draft-model and MTP speculation, every engine's scheduler,
preemption, sliding windows, MoE with EP and hybrid state-space models (a few seconds in all).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time

from suanli.cli.main import main as suanli_main

CASES = {
    "closed_vllm": "llama-3.1-8b --gpu h100 --concurrency 16 --requests 300 --prompt 512 --output 128",
    "closed_sweep": "llama-3.1-8b --gpu h100 --concurrency 1,8,64 --requests 200 --prompt 1024 --output 256",
    "poisson_mixed": "llama-3.1-70b --gpu h100 --tp 4 --rate 6 --requests 1500 --dataset sharegpt-sarathi-8k --seed 3",
    "poisson_bursty": "llama-3.1-8b --gpu a100 --rate 20 --burstiness 2 --requests 400 --prompt 2048 --output 64",
    "replicas_rr": "llama-3.1-8b --gpu h100 --replicas 3 --router round-robin --rate 30 --requests 400 --prompt 700 "
                   "--output 200",
    "replicas_lo": "llama-3.1-8b --gpu h100 --replicas 4 --rate 40 --requests 2000 --prompt 700 --output 200",
    "prefix_aware": "llama-3.1-8b --gpu h100 --replicas 2 --router prefix-aware --prefix-groups 5 --prefix-tokens 1000 "
                    "--enable-prefix-caching --rate 15 --requests 300 --prompt 1500 --output 100",
    "prefix_one": "llama-3.1-8b --gpu l4 --prefix-groups 20 --prefix-tokens 600 --enable-prefix-caching "
                  "--concurrency 32 --requests 300 --prompt 1000 --output 150",
    "pd": "llama-3.1-70b --gpu h100 --tp 4 --pd 1:2 --rate 5 --requests 300 --prompt 2000 --output 200",
    "pd_one_token": "llama-3.1-8b --gpu h100 --pd 2:1 --concurrency 32 --requests 300 --prompt 1000 --output 1",
    "spec_mtp": "deepseek-v3 --gpu h200 --tp 8 --speculative-mtp --concurrency 16 --requests 150 --prompt 1000 "
                "--output 200",
    "spec_draft": "llama-3.1-70b --gpu h100 --tp 4 --speculative-model llama-3.2-1b --num-speculative-tokens 4 "
                  "--acceptance-rate 0.7 --concurrency 8 --requests 120 --prompt 500 --output 300",
    "sglang": "llama-3.1-8b --gpu h100 --engine sglang --rate 25 --requests 800 --dataset sharegpt-sarathi-8k",
    "trtllm": "llama-3.1-8b --gpu h100 --engine trtllm --concurrency 64 --requests 1000 --prompt 800 --output 300",
    "tgi": "llama-3.1-8b --gpu h100 --engine tgi --concurrency 48 --requests 300 --prompt 800 --output 300",
    "hf_static": "llama-3.1-8b --gpu a100 --engine hf --concurrency 8 --requests 64 --prompt 300 --output 100",
    "preempt": "llama-3.2-3b --gpu l4 --concurrency 128 --requests 400 --prompt 1500 --output 800 "
               "--gpu-memory-utilization 0.6",
    "no_chunking_eager": "llama-3.1-8b --gpu h100 --no-enable-chunked-prefill --enforce-eager --rate 10 --requests 300 "
                         "--prompt 3000 --output 100",
    "moe_ep": "mixtral-8x7b --gpu h100 --tp 2 --ep 2 --rate 8 --requests 300 --prompt 1000 --output 200",
    "window": "gemma-2-9b --gpu h100 --concurrency 32 --requests 200 --prompt 6000 --output 300",
    "timeline_slo": "llama-3.1-8b --gpu h100 --rate 12 --requests 300 --prompt 1000 --output 300 --timeline-points 50 "
                    "--slo-ttft-ms 200 --slo-tpot-ms 30",
    "code_dataset": "qwen2.5-7b --gpu h100 --rate 10 --requests 300 --dataset azure-code-2023 --seed 7",
    "mamba_hybrid": "nemotron-h-8b --gpu h100 --concurrency 16 --requests 150 --prompt 2000 --output 200",
    "jamba": "jamba-1.5-mini --gpu h100 --tp 2 --rate 4 --requests 200 --prompt 3000 --output 200",
    "conversation": "llama-3.1-70b --gpu h100 --tp 4 --rate 2 --requests 2000 --dataset azure-conv-2023 --seed 11",
    "small_blocks": "llama-3.1-8b --gpu h100 --block-size 1 --concurrency 24 --requests 200 --prompt 300 --output 300 "
                    "--max-num-seqs 16 --max-num-batched-tokens 512",
}


def run_case(args: str) -> dict[str, object]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status: object = suanli_main(["simulate", *args.split(), "--json"])
        except SystemExit as e:
            status = e.code
    return {"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="write the outputs here (JSON)")
    parser.add_argument("--against", help="outputs of the code before the change: exit 1 if any case differs")
    args = parser.parse_args()
    results = {}
    for name, case in CASES.items():
        start = time.process_time()
        results[name] = run_case(case)
        print(f"{name:18} exit {results[name]['status']}  {time.process_time() - start:5.2f} s CPU")
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    if args.against:
        with open(args.against, encoding="utf-8") as f:
            before = json.load(f)
        differ = sorted(name for name in results if before.get(name) != results[name])
        print(f"{len(results) - len(differ)} of {len(results)} identical" + (f"; differ: {', '.join(differ)}"
                                                                             if differ else ""))
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
