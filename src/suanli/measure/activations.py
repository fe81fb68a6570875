"""Bytes saved for backward by a real forward pass, counted with ``torch.autograd.graph.saved_tensors_hooks``.

This is the measurement that ``suanli.core.activations`` is checked against. Every tensor autograd saves for
the backward pass goes through the pack hook; we count each underlying storage once (views, transposes and
tensors saved by several ops share one storage), keep only the storages still held by the graph when the
forward pass (loss included) ends, and leave out parameters (a ``Linear`` saves its weight too, but weights
are not activations): a saved tensor whose storage is a parameter's or a buffer's storage is not counted.

What is counted is *saved* memory, not peak memory: temporaries that die during the forward pass (a bf16 copy
made and consumed at once, a graph branch nobody uses) are not in it, nor are the logits the model returns to
the caller, nor the gradients that exist only during backward. ``measure_peak_bytes`` replays the allocations
instead: every storage an op creates, alive until it is freed, parameters and buffers left out, through the
forward and the backward pass; its peak is what the saved bytes and the workspace beside them add up to.

torch is imported lazily, inside the functions: ``suanli.measure`` is optional and never imported by the core.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

_LAYER_INDEX = re.compile(r"\.(\d+)(?=\.|$)")


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasuredActivations:
    """Saved-for-backward bytes of one forward pass.

    ``by_module`` groups storages by the module that first saved them, with layer indices folded
    (``model.layers.*.mlp``); ``""`` is the top-level module (the loss). ``per_layer`` gives the bytes first
    saved inside each transformer block, in order. ``unpacked_bytes`` (only with ``backward=True``) is the part
    the backward pass actually read back.
    """

    total_bytes: int
    by_module: Mapping[str, int]
    by_dtype: Mapping[str, int]
    per_layer: tuple[int, ...]
    parameter_bytes_excluded: int
    storages: int
    unpacked_bytes: int | None = None


class _Packed:
    """What the pack hook hands to autograd: the tensor, in an object we can hold a weak reference to."""

    __slots__ = ("__weakref__", "key", "tensor")

    def __init__(self, tensor: torch.Tensor, key: int) -> None:
        self.tensor = tensor
        self.key = key


@dataclass(slots=True)
class _Recorder:
    """Mutable bookkeeping of one measurement (lives only inside ``measure_saved_activations``).

    A storage is keyed by its address, and the allocator hands a freed address to the next tensor: when a key
    comes back after everything packed under it was freed, it is a new storage and is recorded afresh (else a
    dead router mask would lend its size and dtype to whatever tensor later reuses its address)."""

    excluded: frozenset[int]
    module_stack: list[str]
    first_seen: dict[int, tuple[int, str, str]]  # storage key -> (nbytes, module, dtype)
    packed: dict[int, list[weakref.ref[_Packed]]]  # storage key -> what was packed under it
    excluded_bytes: dict[int, int]
    unpacked: set[int]

    def pack(self, tensor: torch.Tensor) -> _Packed:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        refs = self.packed.setdefault(key, [])
        if key in self.excluded:
            self.excluded_bytes[key] = storage.nbytes()
        elif not any(ref() is not None for ref in refs):  # first time, or the address of a freed storage
            refs.clear()
            module = self.module_stack[-1] if self.module_stack else ""
            self.first_seen[key] = (storage.nbytes(), module, str(tensor.dtype).removeprefix("torch."))
        packed = _Packed(tensor, key)
        refs.append(weakref.ref(packed))
        return packed

    def unpack(self, packed: _Packed) -> torch.Tensor:
        self.unpacked.add(packed.key)
        return packed.tensor

    def alive_keys(self) -> set[int]:
        """Storages the graph still holds: packed objects not yet freed."""
        return {key for key, refs in self.packed.items()
                if key not in self.excluded and any(ref() is not None for ref in refs)}


@contextmanager
def _module_names(model: torch.nn.Module, stack: list[str]) -> Iterator[None]:
    """Keep ``stack[-1]`` the name of the innermost module running now."""
    def enter(name: str) -> Callable[..., None]:
        return lambda *_: stack.append(name)

    def leave(*_: object) -> None:
        stack.pop()  # returns None: a forward hook's return value would replace the module's output

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(name)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _weight_storages(model: torch.nn.Module) -> frozenset[int]:
    tensors = [*model.parameters(), *model.buffers()]
    return frozenset(t.untyped_storage().data_ptr() for t in tensors)


def measure_saved_activations(model: torch.nn.Module, run: Callable[[torch.nn.Module], torch.Tensor], *,
                              backward: bool = False) -> MeasuredActivations:
    """Run ``run(model)`` (a forward pass returning a scalar loss) and count the bytes autograd saved for
    backward, each storage once, parameters and buffers excluded. With ``backward=True`` the loss is then
    back-propagated and ``unpacked_bytes`` reports how much of what was saved the backward pass read."""
    import torch

    recorder = _Recorder(excluded=_weight_storages(model), module_stack=[], first_seen={}, packed={},
                         excluded_bytes={}, unpacked=set())
    with _module_names(model, recorder.module_stack), \
            torch.autograd.graph.saved_tensors_hooks(recorder.pack, recorder.unpack):
        loss = run(model)
        alive = recorder.alive_keys()
        if backward:
            loss.backward()  # type: ignore[no-untyped-call]
    result = _summarise(recorder, alive)
    if not backward:
        return result
    unpacked = sum(recorder.first_seen[k][0] for k in alive & recorder.unpacked)
    return MeasuredActivations(total_bytes=result.total_bytes, by_module=result.by_module,
                               by_dtype=result.by_dtype, per_layer=result.per_layer,
                               parameter_bytes_excluded=result.parameter_bytes_excluded,
                               storages=result.storages, unpacked_bytes=unpacked)


def _summarise(recorder: _Recorder, alive: set[int]) -> MeasuredActivations:
    by_module: dict[str, int] = {}
    by_dtype: dict[str, int] = {}
    layers: dict[int, int] = {}
    for key in alive:
        nbytes, module, dtype = recorder.first_seen[key]
        folded = _LAYER_INDEX.sub(".*", module, count=1)
        by_module[folded] = by_module.get(folded, 0) + nbytes
        by_dtype[dtype] = by_dtype.get(dtype, 0) + nbytes
        index = _LAYER_INDEX.search(module)
        if index is not None:
            layers[int(index.group(1))] = layers.get(int(index.group(1)), 0) + nbytes
    return MeasuredActivations(
        total_bytes=sum(by_module.values()),
        by_module=dict(sorted(by_module.items())),
        by_dtype=dict(sorted(by_dtype.items())),
        per_layer=tuple(layers[i] for i in sorted(layers)),
        parameter_bytes_excluded=sum(recorder.excluded_bytes.values()),
        storages=len(alive),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PeakBytes:
    """Live bytes of the storages ops created (parameters and buffers excluded): the peak over the forward
    and backward pass, the peak over the forward pass (loss included), and the op that reached the peak."""

    peak_bytes: int
    forward_peak_bytes: int
    peak_op: str


def measure_peak_bytes(model: torch.nn.Module, run: Callable[[torch.nn.Module], torch.Tensor]) -> PeakBytes:
    """Run ``run(model)`` (a forward pass returning a scalar loss; tensors it stores elsewhere stay alive), then
    the loss's backward, tracking every storage an op creates until it is freed, op by op, on the CPU (a
    ``TorchDispatchMode``; no allocator statistics needed)."""
    tracker = _make_tracker(_weight_storages(model))
    with tracker:
        loss = run(model)
        forward_peak = tracker.peak
        loss.backward()  # type: ignore[no-untyped-call]
    return PeakBytes(peak_bytes=tracker.peak, forward_peak_bytes=forward_peak, peak_op=tracker.peak_op)


def _make_tracker(excluded: frozenset[int]) -> Any:
    """A dispatch mode that records the storages op outputs create and sweeps the freed ones after every op."""
    import torch
    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Tracker(TorchDispatchMode):  # type: ignore[no-untyped-call]
        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.live: dict[int, tuple[Any, int]] = {}
            self.current = self.peak = 0
            self.peak_op = ""

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
                self.current -= self.live.pop(key)[1]
            for tensor in tree_leaves(out):
                if isinstance(tensor, torch.Tensor):
                    storage = tensor.untyped_storage()
                    key = storage.data_ptr()
                    if key not in excluded and key not in self.live and storage.nbytes():
                        self.live[key] = (StorageWeakRef(storage), storage.nbytes())  # type: ignore[no-untyped-call]
                        self.current += storage.nbytes()
            if self.current > self.peak:
                self.peak, self.peak_op = self.current, str(func)
            return out

    return Tracker()


def build_causal_lm(config: Mapping[str, Any], *, attn_implementation: str = "eager",
                    dtype: str = "float32", seed: int = 0, encoder: bool = False) -> torch.nn.Module:
    """A transformers ``AutoModelForCausalLM`` (``AutoModel`` with ``encoder``: BERT with its pooler) for a
    config.json dict, on the CPU, random weights, in ``dtype`` ("float32", "bfloat16", "float16"), in training
    mode (dropout active where the config has it)."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    data = dict(config)
    model_type = data.pop("model_type")
    hf_config = transformers.AutoConfig.for_model(model_type, **data)
    torch.manual_seed(seed)
    auto = transformers.AutoModel if encoder else transformers.AutoModelForCausalLM
    model: torch.nn.Module = auto.from_config(  # type: ignore[no-untyped-call]
        hf_config, dtype=getattr(torch, dtype), attn_implementation=attn_implementation)
    return model.train()


def measure_causal_lm(config: Mapping[str, Any], *, seq: int, micro_batch: int,
                      attn_implementation: str = "eager", dtype: str = "float32", seed: int = 0,
                      backward: bool = False) -> MeasuredActivations:
    """Saved-for-backward bytes of one training step's forward of a transformers causal LM: ``micro_batch``
    random sequences of ``seq`` tokens, labels = inputs (transformers shifts them and computes
    ``ForCausalLMLoss``), no attention mask, no KV cache."""
    model = build_causal_lm(config, attn_implementation=attn_implementation, dtype=dtype, seed=seed)
    input_ids = _random_ids(config, seq=seq, micro_batch=micro_batch, seed=seed)

    def run(m: torch.nn.Module) -> torch.Tensor:
        loss: torch.Tensor = m(input_ids=input_ids, labels=input_ids, use_cache=False).loss
        return loss

    return measure_saved_activations(model, run, backward=backward)


def measure_encoder(config: Mapping[str, Any], *, seq: int, micro_batch: int, attn_implementation: str = "eager",
                    dtype: str = "float32", seed: int = 0) -> MeasuredActivations:
    """The same for an encoder (BERT): ``AutoModel`` on random ids, no attention mask, driven by the sum of
    its last hidden state and pooler output (the sums save nothing), as a task head on both would."""
    model = build_causal_lm(config, attn_implementation=attn_implementation, dtype=dtype, seed=seed, encoder=True)
    input_ids = _random_ids(config, seq=seq, micro_batch=micro_batch, seed=seed)

    def run(m: torch.nn.Module) -> torch.Tensor:
        out = m(input_ids=input_ids)
        loss: torch.Tensor = out.last_hidden_state.sum() + out.pooler_output.sum()
        return loss

    return measure_saved_activations(model, run)


def _random_ids(config: Mapping[str, Any], *, seq: int, micro_batch: int, seed: int) -> torch.Tensor:
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, int(config["vocab_size"]), (micro_batch, seq), generator=generator)


__all__ = ["MeasuredActivations", "PeakBytes", "build_causal_lm", "measure_causal_lm", "measure_encoder",
           "measure_peak_bytes", "measure_saved_activations"]
