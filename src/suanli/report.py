"""Reports: the numbers a command prints, their JSON shape, and how each was derived.

``Report.to_dict()`` is the one JSON shape used by ``--json`` (and later the web page); ``explanations``
hold the traced headline numbers, so ``--explain`` prints the same formulas the code ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from suanli.core.flops import FlopCounts, count_flops, head_forward_flops, layer_forward_flops, six_n_d
from suanli.core.params import ParamCounts, count_params, layer_components, outer_components
from suanli.core.vision import VisionFlops, sequence_images, vision_param_parts
from suanli.i18n import Text
from suanli.quantity import Quantity, traced
from suanli.spec.assumptions import AttentionSpan
from suanli.spec.family_match import approximation
from suanli.spec.layout import Recompute
from suanli.spec.model import Layer, ModelSpec, Moe
from suanli.spec.resolve import ResolvedModel


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What one command answers: JSON-ready values, derivations and notes."""

    command: str
    model: str
    values: Mapping[str, Any]
    explanations: tuple[Quantity, ...] = ()
    notes: tuple[str, ...] = field(default=())
    approximate: str = ""  # why the numbers are approximate (config read as another family, --as); "" when exact
    headline: str = ""  # what the reader must see first (a job that does not fit: DOES NOT FIT …); "" when none

    def __post_init__(self) -> None:
        if self.approximate:  # an approximate report says so in its first note
            note = Text("note.approximate", reason=self.approximate)
            rest = tuple(n for n in self.notes if n not in (note, self.approximate))
            object.__setattr__(self, "notes", (note, *rest))

    def to_dict(self) -> dict[str, Any]:
        lead = {"headline": self.headline} if self.headline else {}
        return {"command": self.command, "model": self.model, **lead, **approximate_fields(self.approximate),
                **self.values, "notes": list(self.notes)}


def approximate_fields(reason: str) -> dict[str, Any]:
    """The JSON marker of every report: ``approximate`` (bool), and ``approximate_reason`` when it is true."""
    return {"approximate": True, "approximate_reason": reason} if reason else {"approximate": False}


def params_report(resolved: ResolvedModel) -> Report:
    """``suanli params``: total, active, embedding, per component, per layer, and the publisher's figure."""
    spec = resolved.spec
    counts = count_params(spec)
    values: dict[str, Any] = {
        "model_type": spec.model_type,
        "origin": resolved.origin,
        "source": spec.source,
        "total_params": counts.total,
        "active_params": counts.active,
        "embedding_params": counts.embedding,
        "non_embedding_params": counts.non_embedding,
        "components_params": dict(counts.components),
        "num_layers": spec.num_layers,
        "per_layer_params": list(counts.per_layer),
        "architecture": architecture_summary(spec),
    }
    if resolved.catalog is not None and resolved.catalog.stated_params:
        values["stated_params"] = resolved.catalog.stated_params
        values["stated_params_source"] = resolved.catalog.stated_params_source
    if spec.vision is not None:
        values["vision"] = {"params": counts.components.get("vision", 0), "depth": spec.vision.depth,
                            "hidden_size": spec.vision.hidden_size, "patch_size": spec.vision.patch.patch_size,
                            "image_size": spec.vision.image_size,
                            "params_by_part": vision_param_parts(spec.vision)}
    values.update(_stored_values(resolved))
    notes = tuple(text for _, text in spec.extras) + _stored_notes(resolved, counts)
    return Report(command="params", model=spec.name, values=values, approximate=approximation(spec),
                  explanations=explain_params(spec, counts), notes=notes)


def flops_report(spec: ModelSpec, *, seq: int, batch: int, span: AttentionSpan, recompute: Recompute,
                 images: int = 0, image_size: tuple[int, int] | None = None, tiles: int | None = None) -> Report:
    """``suanli flops``: forward, backward and training FLOPs of one batch, by component, vs 6·N·D. With
    ``images`` per sequence, the vision tower's FLOPs are a separate figure (``vision``) and mllama's
    cross-attention layers read the images' states."""
    height, width = image_size or (None, None)
    image = sequence_images(spec, images=images, seq=seq, height=height, width=width,
                            tiles=tiles) if images else None
    states = images * image.tokens if image is not None and spec.vision and spec.vision.tiles else 0
    flops = count_flops(spec, seq=seq, batch=batch, span=span, recompute=recompute, image_states=states)
    counts = count_params(spec)
    values: dict[str, Any] = {
        "seq": seq,
        "batch": batch,
        "tokens": flops.tokens,
        "attention_span": span.value,
        "recompute": recompute.value,
        "forward_flops": flops.forward,
        "backward_flops": flops.backward,
        "training_flops": flops.training,
        "recompute_flops": flops.recompute,
        "training_with_recompute_flops": flops.training_with_recompute,
        "forward_flops_per_token": flops.forward_per_token,
        "training_flops_per_token": flops.training / flops.tokens,
        "components_forward_flops": dict(flops.components),
        "six_n_d_flops": six_n_d(counts.active, flops.tokens),
        "ratio_to_six_n_d": flops.training / six_n_d(counts.active, flops.tokens),
    }
    if image is not None:
        values["vision"] = _vision_values(image, images=images, batch=batch, cross=states > 0)
    return Report(command="flops", model=spec.name, values=values, approximate=approximation(spec),
                  explanations=explain_flops(spec, flops, span),
                  notes=_flops_notes(spec, flops, span, images))


def architecture_summary(spec: ModelSpec) -> dict[str, Any]:
    """The features a person checks first: attention kind, MLP kind, norms, positions, MoE shape."""
    first = spec.layers[0]
    attention = spec.first_attention
    summary: dict[str, Any] = {
        "hidden_size": spec.hidden_size,
        "num_layers": spec.num_layers,
        "vocab_size": spec.vocab_size,
        "attention": attention.kind if attention is not None else None,
        "num_attention_heads": attention.num_heads if attention is not None else None,
        "num_key_value_heads": attention.num_kv_heads if attention is not None else None,
        "head_dim": attention.head_dim if attention is not None else None,
        "position": spec.position.value,
        "norm": first.norms[0].kind.value if first.norms else None,
        "tied_embeddings": spec.tie_word_embeddings,
        "parallel_block": first.parallel,
        "sliding_window_layers": sum(layer.attention is not None and layer.attention.sliding_window is not None
                                     for layer in spec.layers),
        "attention_layers": sum(layer.attention is not None for layer in spec.layers),
        "nope_layers": sum(layer.attention is not None and not layer.attention.rope for layer in spec.layers),
        "ssm_layers": sum(layer.mixer is not None for layer in spec.layers),
        "moe_layers": sum(layer.is_moe for layer in spec.layers),
        "causal": spec.causal,
        "torch_dtype": spec.torch_dtype,
        "quantization": spec.quantization.weights.key if spec.quantization is not None else None,
    }
    moe = _first_moe(spec)
    if moe is not None:
        summary["experts"] = {"routed": moe.num_experts, "top_k": moe.top_k, "shared": moe.shared is not None}
    return summary


def _first_moe(spec: ModelSpec) -> Moe | None:
    for layer in spec.layers:
        if isinstance(layer.ffn, Moe):
            return layer.ffn
    return None


def explain_params(spec: ModelSpec, counts: ParamCounts) -> tuple[Quantity, ...]:
    """Traced formulas: each distinct block's components, then the total."""
    terms: list[Quantity] = []
    for index, (layer, count) in enumerate(spec.layer_groups()):
        label = "" if len(spec.layer_groups()) == 1 else f"[group {index + 1}: {count} layers]"
        block = _traced_layer(layer, spec.hidden_size, label)
        terms.append(Quantity.input(count, f"layers{label}") * block)
    for name, value in outer_components(spec, traced).items():
        terms.append(value.named(f"{name}_params", "params"))
    total = sum(terms[1:], terms[0]).named("total_params", "params", source=Text("value.source.module_sizes"))
    return (total,)


def _traced_layer(layer: Layer, hidden_size: int, label: str) -> Quantity:
    parts = [value.named(f"{name}_params_per_layer{label}", "params")
             for name, value in layer_components(layer, hidden_size, traced).items()]
    return sum(parts[1:], parts[0]).named(f"params_per_layer{label}", "params")


def explain_flops(spec: ModelSpec, flops: FlopCounts, span: AttentionSpan) -> tuple[Quantity, ...]:
    """Traced formulas for one sequence: the first block's components and the output head."""
    layer = spec.layers[0]
    parts = [value.named(f"{name}_forward_flops_per_layer", "FLOP")
             for name, value in layer_forward_flops(layer, spec.hidden_size, flops.seq, span, traced).items()]
    head = [value.named(f"{name}_forward_flops", "FLOP")
            for name, value in head_forward_flops(spec, flops.seq, traced).items()]
    forward = Quantity.input(flops.forward, "forward_flops", "FLOP")
    training = (forward + 2 * forward).named("training_flops", "FLOP",
                                             source=Text("value.source.backward"))
    return (training, *parts, *head)


def _vision_values(image: VisionFlops, *, images: int, batch: int, cross: bool) -> dict[str, Any]:
    """The vision tower's figure for ``suanli flops --images``: per image, and for the whole batch."""
    return {"images_per_sequence": images, "image_height": image.height, "image_width": image.width,
            "patches_per_image": image.patches, "tokens_per_image": image.tokens,
            "tokens_are": Text("value.flops.cross_states") if cross else Text("value.flops.prompt_tokens"),
            "forward_flops_per_image": image.forward,
            "components_forward_flops_per_image": dict(image.components),
            "forward_flops": image.forward * images * batch,
            "training_flops": 3 * image.forward * images * batch}


def _flops_notes(spec: ModelSpec, flops: FlopCounts, span: AttentionSpan, images: int = 0) -> tuple[str, ...]:
    notes = [Text("note.flops.matmul_only")]
    if span is AttentionSpan.FULL and spec.causal:
        notes.append(Text("note.flops.full_attention"))
    if len(set(spec.layers)) > 1:
        notes.append(Text("note.flops.layers_differ"))
    cross = sum(1 for layer in spec.layers if layer.attention is not None and layer.attention.cross)
    if cross and not images:
        notes.append(Text("note.flops.text_only", cross=cross))
    return tuple(notes)


def _stored_values(resolved: ResolvedModel) -> dict[str, Any]:
    if resolved.stored is not None:
        return {"stored_params": resolved.stored.total_params, "stored_bytes": resolved.stored.total_bytes,
                "stored_params_by_dtype": dict(resolved.stored.params_by_dtype)}
    if resolved.gguf is not None:
        return {"stored_params": resolved.gguf.total_params, "stored_bytes": resolved.gguf.total_bytes}
    return {}


def _stored_notes(resolved: ResolvedModel, counts: ParamCounts) -> tuple[str, ...]:
    stored = _stored_values(resolved).get("stored_params")
    if stored is None or stored == counts.total:
        return ()
    return (Text("note.params.stored_differs", stored=stored, implied=counts.total, gap=stored - counts.total),)
