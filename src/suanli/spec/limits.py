"""Sanity bounds on sizes and counts, far beyond anything real, so that a typo (an extra ``000``) or a
nonsense config ends in a clear error instead of an out-of-memory crash or a confident absurd number.

Each bound is set one to two orders of magnitude above the largest real model or cluster we know of (named
next to it), so no real model or job is ever refused by them. They are sanity checks, not hardware or model
data: nothing is estimated from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from suanli.errors import ConfigError, LayoutError

#: config.json key → (largest accepted value, the real extreme it is far above).
MODEL_LIMITS: Mapping[str, tuple[int, str]] = MappingProxyType({
    # the deepest Transformer trained: DeepNet, 1,000 layers (Wang et al. 2022, arXiv:2203.00555); LLMs ≤ 126
    "num_hidden_layers": (100_000, "100x DeepNet's 1,000 layers, the deepest Transformer trained"),
    "n_layer": (100_000, "100x DeepNet's 1,000 layers, the deepest Transformer trained"),
    "depth": (100_000, "100x DeepNet's 1,000 layers (vision towers: Qwen-VL's 32 blocks)"),
    "num_global_layers": (100_000, "100x DeepNet's 1,000 layers (mllama's vision tower: 8)"),
    # the widest: MT-NLG 530B, hidden 20,480 (Smith et al. 2022, arXiv:2201.11990)
    "hidden_size": (1_000_000, "about 50x MT-NLG 530B's 20,480, the widest LLM"),
    "n_embd": (1_000_000, "about 50x MT-NLG 530B's 20,480, the widest LLM"),
    # the widest MLP: PaLM 540B, 73,728 (4 x 18,432; Chowdhery et al. 2022, arXiv:2204.02311)
    "intermediate_size": (10_000_000, "over 100x PaLM 540B's 73,728, the widest MLP"),
    "moe_intermediate_size": (10_000_000, "over 100x PaLM 540B's 73,728, the widest MLP"),
    "ffn_dim": (10_000_000, "over 100x PaLM 540B's 73,728, the widest MLP"),
    # the largest vocabularies: Gemma 3's 262,144 and BLOOM's 250,880 entries
    "vocab_size": (10_000_000, "about 40x Gemma 3's 262,144 entries, the largest vocabulary"),
    # the most heads: 128 (Llama 3.1 405B, DeepSeek-V3); head_dim at most 256 (Gemma)
    "num_attention_heads": (100_000, "about 1,000x the 128 heads of Llama 3.1 405B and DeepSeek-V3"),
    "n_head": (100_000, "about 1,000x the 128 heads of Llama 3.1 405B and DeepSeek-V3"),
    "num_heads": (100_000, "about 1,000x the 128 heads of Llama 3.1 405B and DeepSeek-V3"),
    "attention_heads": (100_000, "about 1,000x the 128 heads of Llama 3.1 405B and DeepSeek-V3"),
    "num_key_value_heads": (100_000, "about 1,000x the 128 heads of Llama 3.1 405B and DeepSeek-V3"),
    "head_dim": (100_000, "about 400x Gemma's 256"),
    # the most experts: PEER's 1,048,576 (He 2024, "Mixture of A Million Experts", arXiv:2407.04153)
    "num_local_experts": (10_000_000, "about 10x PEER's 1,048,576 experts"),
    "num_experts": (10_000_000, "about 10x PEER's 1,048,576 experts"),
    "n_routed_experts": (10_000_000, "about 10x PEER's 1,048,576 experts"),
    # the longest context: Llama 4 Scout, 10M tokens (max_position_embeddings 10,485,760)
    "max_position_embeddings": (1_000_000_000, "about 100x Llama 4 Scout's 10M-token context"),
    "n_positions": (1_000_000_000, "about 100x Llama 4 Scout's 10M-token context"),
})

#: The largest GPU count a layout may use. The largest clusters are about 2 x 10^5 GPUs (xAI Colossus, 2025)
#: and announced plans reach 10^6; 10^7 is ten times that.
MAX_GPUS = 10_000_000
MAX_GPUS_REASON = "10x the largest announced cluster plans, 10^6 GPUs"


def check_model_value(name: str, key: str, value: int) -> None:
    """Raise ConfigError when ``value`` of config key ``key`` is beyond its sanity bound."""
    limit = MODEL_LIMITS.get(key)
    if limit is not None and value > limit[0]:
        raise ConfigError(f"{name}: '{key}' is {value:,}, beyond the sanity limit of {limit[0]:,} ({limit[1]}); "
                          "check the config for a typo", key="error.config_beyond_limit",
                          fields={"name": name, "key": key, "value": value, "limit": limit[0], "reason": limit[1]})


def check_gpu_count(what: str, gpus: int) -> None:
    """Raise LayoutError when a job asks for more GPUs than ``MAX_GPUS``."""
    if gpus > MAX_GPUS:
        raise LayoutError(f"{what} is {gpus:,} GPUs, beyond the sanity limit of {MAX_GPUS:,} ({MAX_GPUS_REASON}); "
                          "check the number for a typo", key="error.gpus_beyond_limit",
                          fields={"what": what, "gpus": gpus, "limit": MAX_GPUS, "reason": MAX_GPUS_REASON})
