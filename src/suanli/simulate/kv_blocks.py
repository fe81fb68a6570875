"""The paged KV cache of one replica: a pool of fixed-size blocks (PagedAttention, Kwon et al. 2023,
arXiv:2309.06180 §4), with prefix caching.

A sequence of t tokens holds ⌈t / block_size⌉ blocks; blocks are taken as it grows and returned when it
finishes or is preempted. The pool's size is the engine's KV budget divided by the bytes of one block — the
same ``kv_capacity_tokens`` that ``suanli infer`` reports — so the simulator and ``infer`` agree on memory.

Prefix caching (vLLM's automatic prefix caching, SGLang's RadixAttention): the full blocks of a prefix shared by
a group of requests are computed once and then shared. Here a group's cached blocks stay resident while a
member uses them; once unused they stay cached but count as free and are evicted, least recently used first,
when a sequence needs the space (vLLM keeps freed cached blocks in its free queue for exactly this reuse).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from suanli.errors import require_positive
from suanli.i18n import Text


@dataclass(slots=True)
class _Prefix:
    blocks: int  # full blocks of the shared prefix held in the cache
    users: int = 0


@dataclass(slots=True)
class BlockPool:
    """``num_blocks`` blocks of ``block_size`` tokens. ``used`` counts blocks held by sequences or by
    prefixes in use; ``idle_cached`` those held only as evictable cache."""

    num_blocks: int
    block_size: int
    prefix_caching: bool = False
    used: int = 0
    peak_used: int = 0
    _prefixes: OrderedDict[int, _Prefix] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        require_positive("KV blocks", self.num_blocks, fix=Text("fix.simulate.kv_blocks"))
        require_positive("block_size", self.block_size)

    @property
    def capacity_tokens(self) -> int:
        return self.num_blocks * self.block_size

    @property
    def idle_cached(self) -> int:
        return sum(p.blocks for p in self._prefixes.values() if not p.users)

    @property
    def free(self) -> int:
        """Blocks a sequence can take now, evicting idle cached prefixes if it must."""
        return self.num_blocks - self.used

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def take(self, blocks: int) -> bool:
        """Take ``blocks`` for a sequence, evicting idle cached prefixes (LRU) when needed; False if the pool
        cannot provide them (the scheduler then preempts or waits)."""
        if blocks < 0:
            raise RuntimeError(f"simulator bug: a sequence asked for {blocks} blocks")
        if blocks > self.num_blocks - self.used:
            return False
        if self._prefixes:  # only cached prefixes can need evicting
            self._evict_for(blocks)
        self.used += blocks
        self.peak_used = max(self.peak_used, self.used)
        return True

    def give_back(self, blocks: int) -> None:
        self.used -= blocks
        if self.used < 0:
            raise RuntimeError("simulator bug: KV block accounting went negative (a sequence was freed twice)")

    def _evict_for(self, blocks: int) -> None:
        """Drop idle cached prefixes, oldest first, until ``blocks`` fit beside what is used and cached."""
        cached_idle = self.idle_cached
        while self.used + cached_idle + blocks > self.num_blocks:
            group = next((g for g, p in self._prefixes.items() if not p.users), None)
            if group is None:
                return
            cached_idle -= self._prefixes.pop(group).blocks

    # --- shared prefixes ---------------------------------------------------------------------------------------

    def cached_prefix_tokens(self, group: int | None, prefix_tokens: int) -> int:
        """Tokens of a request's prefix already in the cache (whole blocks only), 0 without a hit."""
        if not self.prefix_caching or group is None or group not in self._prefixes:
            return 0
        return min(self._prefixes[group].blocks, prefix_tokens // self.block_size) * self.block_size

    def join_prefix(self, group: int) -> int:
        """A sequence starts using group's cached blocks: they are now in use (no longer evictable). Returns the
        blocks shared."""
        prefix = self._prefixes[group]
        self._prefixes.move_to_end(group)
        if not prefix.users:
            self.used += prefix.blocks
            self.peak_used = max(self.peak_used, self.used)
        prefix.users += 1
        return prefix.blocks

    def leave_prefix(self, group: int) -> None:
        prefix = self._prefixes.get(group)
        if prefix is None:
            return
        prefix.users -= 1
        if not prefix.users:
            self.used -= prefix.blocks  # still cached, now evictable

    def publish_prefix(self, group: int, blocks: int) -> None:
        """A sequence computed its prefix's ``blocks`` full blocks: hand them to the cache, shared from now on (the
        caller moves them from the sequence's own count to the prefix's and joins it)."""
        if not self.prefix_caching or blocks <= 0 or group in self._prefixes:
            return
        self.used -= blocks  # the sequence's own blocks become the prefix's …
        self._prefixes[group] = _Prefix(blocks=blocks)
        self.join_prefix(group)  # … which the sequence now uses
