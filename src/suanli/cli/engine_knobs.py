"""The serving engines' own knobs, under their own names, for every command that serves a model (``infer``,
``simulate``): a user mirrors the server they run, and the KV pool then matches that server's log."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from suanli.cli.common import fraction, positive_int

if TYPE_CHECKING:
    from suanli.spec.engines import EngineKnobs


def add_engine_knobs(parser: argparse.ArgumentParser) -> None:
    knobs = parser.add_argument_group("engine knobs (the engine's own names; default: its defaults)")
    knobs.add_argument("--gpu-memory-utilization", type=fraction, metavar="F",
                       help="vLLM's share of GPU memory (SGLang: --mem-fraction-static; TensorRT-LLM: the free "
                       "fraction for KV)")
    knobs.add_argument("--mem-fraction-static", type=fraction, dest="gpu_memory_utilization", help=argparse.SUPPRESS)
    knobs.add_argument("--max-num-seqs", type=positive_int, help="running sequences (SGLang max_running_requests, "
                       "TensorRT-LLM max_batch_size, static batch size)")
    knobs.add_argument("--max-num-batched-tokens", type=positive_int, help="tokens per step (SGLang "
                       "--chunked-prefill-size, TensorRT-LLM max_num_tokens)")
    knobs.add_argument("--chunked-prefill-size", type=positive_int, dest="max_num_batched_tokens",
                       help=argparse.SUPPRESS)
    knobs.add_argument("--block-size", type=positive_int, help="tokens per KV block")
    knobs.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=None)
    knobs.add_argument("--enable-chunked-prefill", action=argparse.BooleanOptionalAction, default=None,
                       help="split long prompts over steps (vLLM V1 and SGLang do by default)")
    knobs.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs")
    knobs.add_argument("--max-model-len", type=positive_int, metavar="TOKENS",
                       help="the longest request (prompt + output) the server takes (default: the model's context; "
                       "SGLang --context-length, llama.cpp -c); vLLM refuses to start when its KV pool holds less")
    knobs.add_argument("--context-length", type=positive_int, dest="max_model_len", help=argparse.SUPPRESS)


def engine_knobs(args: argparse.Namespace) -> EngineKnobs:
    from suanli.spec.engines import EngineKnobs

    return EngineKnobs(gpu_memory_utilization=args.gpu_memory_utilization, max_num_seqs=args.max_num_seqs,
                       max_num_batched_tokens=args.max_num_batched_tokens, block_size=args.block_size,
                       enable_prefix_caching=args.enable_prefix_caching,
                       enable_chunked_prefill=args.enable_chunked_prefill, enforce_eager=args.enforce_eager,
                       max_model_len=args.max_model_len)
