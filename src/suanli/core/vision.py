"""Parameters and FLOPs of a vision tower (``spec/vision.py``), per image.

Parameters follow the transformers modules exactly (checked in ``tests/reference/test_params_vs_transformers.py``):
the patch convolution holds C·T·p²·d weights (+ d bias); position tables rows·d; each encoder block what a
language-model block of the same shape holds (``core/params.py``); projectors their norm and matrices.

FLOPs use the conventions of ``core/flops.py`` (a multiply-add is 2 FLOPs, matmuls only, attention over every
query-key pair the kernel computes) for ONE image, as ``torch.utils.flop_counter`` counts them in eager mode:

- patch embedding: 2·N·(C·T·p²)·d over the N = (H/p)·(W/p) patches (a convolution with stride = kernel);
- each block: 2·n·(matmul weights) + 2·heads·2·head_dim·pairs, with n the tokens the block sees (N, plus the
  class token and padding to a multiple of 8 per tile for mllama, times the tiles) and pairs = n² for full
  attention, Σ wᵢ² over Qwen2.5-VL's windows (``window_pairs``);
- projectors: 2·t·(in·hidden + hidden·out) or 2·t·in·out over the t tokens they see (N / merge², N / pool²,
  or every tile position for mllama).

Left out: norms, GELU/SiLU, RoPE, position interpolation and average pooling (O(N·d), under 1% here).
The vision tower is not part of the text ``count_flops``; mllama's cross-attention layers are (given the image
states a sequence attends).
"""

from __future__ import annotations

from dataclasses import dataclass

from suanli.core.flops import attention_core_flops
from suanli.core.params import attention_params, layer_params, linear_params, mlp_params, norm_params
from suanli.core.roofline import Op, OpKind, gemm, total_time_s
from suanli.errors import SpecError, require_positive
from suanli.i18n import Text
from suanli.quantity import plain
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.hardware import Accelerator
from suanli.spec.model import Layer, Mlp, ModelSpec
from suanli.spec.vision import Projector, VisionTower

#: mllama pads each tile's patch sequence to a multiple of this many tokens (MllamaVisionModel.forward).
_MLLAMA_PAD_MULTIPLE = 8


def projector_params(p: Projector) -> int:
    """Norm + one matrix, or norm + two matrices (Qwen mergers), with biases when ``bias``."""
    norm = int(norm_params(p.norm, plain)) if p.norm is not None else 0
    if p.hidden_size is None:
        return norm + int(linear_params(p.in_size, p.out_size, p.bias))
    return norm + int(linear_params(p.in_size, p.hidden_size, p.bias) + linear_params(p.hidden_size, p.out_size,
                                                                                      p.bias))


def position_params(t: VisionTower) -> int:
    """Learned positions and class token; mllama's tiles add a gated tile-position table of
    (R+1)·tiles·rows·d and pre/post tile embeddings of (R+1)·tiles·d + 1 gate each (R aspect ratios)."""
    d = t.hidden_size
    params = t.position_rows * d + (d if t.class_token else 0)
    if t.tiles is not None:
        ids = t.tiles.aspect_ratios + 1
        params += 1 + ids * t.tiles.max_tiles * t.position_rows * d  # gate + tile-position table
        params += 2 * (ids * t.tiles.max_tiles * d + 1)  # pre- and post-tile embeddings with their gates
    return params


def vision_param_parts(t: VisionTower) -> dict[str, int]:
    """A tower's parameters by part: patch embedding, positions, encoder blocks, norms, projectors."""
    d = t.hidden_size
    blocks: dict[Layer, int] = {}
    for layer in t.layers:
        blocks[layer] = blocks.get(layer, 0) + 1
    return {
        "patch_embedding": t.patch.pixels_per_patch * d + (d if t.patch.bias else 0),
        "positions": position_params(t),
        "blocks": sum(layer_params(layer, d) * count for layer, count in blocks.items()),
        "norms": sum(int(norm_params(n, plain)) for n in t.norms),
        "projectors": sum(projector_params(p) for p in t.projectors),
    }


def vision_params(t: VisionTower) -> int:
    """All parameters of the tower and its projector(s)."""
    return sum(vision_param_parts(t).values())


# --- FLOPs ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class VisionFlops:
    """Forward FLOPs of the tower for one image, by part, and how many tokens it hands the language model."""

    height: int
    width: int
    patches: int
    tokens: int  # prompt tokens (Qwen, Gemma 3) or cross-attention states (mllama) per image
    components: dict[str, float]

    @property
    def forward(self) -> float:
        return sum(self.components.values())


def window_pairs(t: VisionTower, grid_h: int, grid_w: int) -> int:
    """Query-key pairs of one head in a Qwen2.5-VL window-attention block: the merged grid is cut into windows of
    (window / merge)² merged tokens (partial at the bottom and right edges); a window of k merged tokens holds
    k·merge² patches that attend each other (transformers ``get_vision_window_index``)."""
    if t.window_patches is None:
        return (grid_h * grid_w) ** 2
    side = max(1, t.window_patches // t.merge)
    unit = t.merge * t.merge
    rows, cols = _chunks(grid_h // t.merge, side), _chunks(grid_w // t.merge, side)
    return sum((r * c * unit) ** 2 for r in rows for c in cols)


def _chunks(length: int, size: int) -> list[int]:
    return [size] * (length // size) + ([length % size] if length % size else [])


def _block_flops(layer: Layer, d: int, tokens: int, pairs: int) -> tuple[float, float, float]:
    """(projections, attention scores, MLP) forward FLOPs of one encoder block over ``tokens`` tokens."""
    a, ffn = layer.attention, layer.ffn
    if a is None or not isinstance(ffn, Mlp):
        raise SpecError("vision encoder blocks hold attention and a dense MLP", key="error.core.vision_block")
    proj = 2 * tokens * attention_params(a, d, plain, matmul_only=True)
    scores = attention_core_flops(a, pairs, plain)
    mlp = 2 * tokens * mlp_params(ffn, d, plain, matmul_only=True)
    return proj, scores, mlp


def _projector_flops(p: Projector, tokens: int) -> float:
    if p.hidden_size is None:
        return 2.0 * tokens * p.in_size * p.out_size
    return 2.0 * tokens * (p.in_size * p.hidden_size + p.hidden_size * p.out_size)


def vision_flops(t: VisionTower, *, height: int | None = None, width: int | None = None,
                 tiles: int | None = None) -> VisionFlops:
    """Forward FLOPs of one image of ``height`` × ``width`` px (already resized as the processor does; fixed-size
    towers default to their ``image_size``) through the tower and its projector(s). ``tiles``: mllama tiles
    (default: all ``max_tiles``)."""
    height = height or t.image_size
    width = width or t.image_size
    if height is None or width is None:
        raise SpecError("this vision tower takes images of any size: give the image height and width in px, "
                        "e.g. --image-size 448",
                        key="error.vision.size")
    require_positive("image height", height)
    require_positive("image width", width)
    grid_h, grid_w = t.grid(height, width)
    patches = grid_h * grid_w
    n_tiles = _tiles(t, tiles)
    per_tile = patches + (1 if t.class_token else 0)
    seq = per_tile if t.tiles is None else -(-per_tile // _MLLAMA_PAD_MULTIPLE) * _MLLAMA_PAD_MULTIPLE
    seq *= n_tiles
    parts = {"vision_patch_embedding": 2.0 * n_tiles * patches * t.patch.pixels_per_patch * t.hidden_size,
             "vision_attention_proj": 0.0, "vision_attention_scores": 0.0, "vision_mlp": 0.0}
    windowed = window_pairs(t, grid_h, grid_w)
    for index, layer in enumerate(t.layers):
        full = t.full_attention_layers is None or index in t.full_attention_layers
        proj, scores, mlp = _block_flops(layer, t.hidden_size, seq, seq * seq if full else windowed)
        parts["vision_attention_proj"] += proj
        parts["vision_attention_scores"] += scores
        parts["vision_mlp"] += mlp
    tokens = _output_tokens(t, patches, n_tiles, per_tile)
    parts["vision_projector"] = sum(_projector_flops(p, tokens) for p in t.projectors)
    return VisionFlops(height=height, width=width, patches=patches * n_tiles, tokens=tokens, components=parts)


def _tiles(t: VisionTower, tiles: int | None) -> int:
    if t.tiles is None:
        if tiles not in (None, 1):
            raise SpecError("only mllama (Llama 3.2 Vision) splits an image into tiles; drop --tiles",
                            key="error.vision.tiles_unsupported")
        return 1
    n = t.tiles.max_tiles if tiles is None else tiles
    if not 1 <= n <= t.tiles.max_tiles:
        raise SpecError(f"tiles must be between 1 and max_num_tiles ({t.tiles.max_tiles}), got {n}",
                        key="error.vision.tiles_range", fields={"max_tiles": t.tiles.max_tiles, "tiles": n})
    return n


def _output_tokens(t: VisionTower, patches: int, tiles: int, per_tile: int) -> int:
    """Tokens the projector sees: merged patches (Qwen), pooled patches (Gemma 3), or every tile position with
    its class token (mllama's cross-attention states)."""
    if t.tiles is not None:
        return tiles * per_tile
    return patches // (t.merge * t.merge * t.pool * t.pool)


def image_tokens(t: VisionTower, *, height: int | None = None, width: int | None = None,
                 tiles: int | None = None) -> int:
    """Tokens one image hands the language model (see ``vision_flops``)."""
    return vision_flops(t, height=height, width=width, tiles=tiles).tokens


def sequence_images(spec: ModelSpec, *, images: int, seq: int, height: int | None = None,
                    width: int | None = None, tiles: int | None = None) -> VisionFlops:
    """One image's tower FLOPs for a sequence of ``seq`` tokens holding ``images`` images, after checking the
    model has a tower and, where image tokens join the prompt (Qwen, Gemma 3), that they fit in ``seq``."""
    require_positive("images", images, fix=Text("fix.core.images"))
    if spec.vision is None:
        raise SpecError(f"{spec.name} ({spec.model_type}) has no vision tower; drop --images, or pick "
                        "a vision-language model (its config.json has a vision_config)",
                        key="error.vision.no_tower", fields={"model": spec.name, "model_type": spec.model_type})
    image = vision_flops(spec.vision, height=height, width=width, tiles=tiles)
    if spec.vision.tiles is None and images * image.tokens > seq:
        raise SpecError(f"{images} image(s) of {image.tokens} tokens do not fit in --seq {seq}; image tokens are "
                        f"part of the sequence: use --seq {images * image.tokens + 1} or more, or fewer images",
                        key="error.vision.seq",
                        fields={"images": images, "tokens": image.tokens, "seq": seq,
                                "needed": images * image.tokens + 1})
    return image


# --- time on an accelerator -------------------------------------------------------------------------------------


def vision_ops(t: VisionTower, *, images: int, height: int | None = None, width: int | None = None,
               tiles: int | None = None, tp: int = 1, dtype_bytes: float = 2.0) -> list[Op]:
    """The tower's forward kernels for ``images`` images on one GPU of ``tp`` (heads and MLP widths split as
    vLLM's parallel linears do): the patch matmul, per block the qkv/out/MLP GEMMs and the attention core, and
    the projectors. FLOPs sum to ``images`` × ``vision_flops(...).forward`` / tp."""
    image = vision_flops(t, height=height, width=width, tiles=tiles)
    per_image_seq = _block_tokens(t, image)
    tokens, b, d = images * per_image_seq, dtype_bytes, t.hidden_size
    ops = [gemm("vision_patch_embed", images * image.patches, d / tp, t.patch.pixels_per_patch, b)]
    grid_h, grid_w = t.grid(image.height, image.width)
    windowed = window_pairs(t, grid_h, grid_w)
    for index, layer in enumerate(t.layers):
        a, ffn = layer.attention, layer.ffn
        if a is None or not isinstance(ffn, Mlp):
            raise SpecError("vision encoder blocks hold attention and a dense MLP", key="error.core.vision_block")
        full = t.full_attention_layers is None or index in t.full_attention_layers
        pairs = per_image_seq * per_image_seq if full else windowed
        q_width, kv_width = a.num_heads * a.head_dim / tp, a.num_kv_heads * a.head_dim / tp
        ops += [gemm("vision_qkv", tokens, q_width + 2 * kv_width, d, b),
                Op(name="vision_attention", kind=OpKind.ATTENTION,
                   flops=images * 2 * a.num_heads / tp * (a.head_dim + a.v_head_dim) * pairs,
                   bytes=tokens * (2 * q_width + 2 * kv_width) * b),
                gemm("vision_out", tokens, d, q_width, b),
                gemm("vision_mlp_up", tokens, (2 if ffn.gated else 1) * ffn.intermediate_size / tp, d, b),
                gemm("vision_mlp_down", tokens, d, ffn.intermediate_size / tp, b)]
    for p in t.projectors:
        rows = images * image.tokens
        if p.hidden_size is None:
            ops.append(gemm("vision_projector", rows, p.out_size / tp, p.in_size, b))
        else:
            ops += [gemm("vision_merger_in", rows, p.hidden_size / tp, p.in_size, b),
                    gemm("vision_merger_out", rows, p.out_size, p.hidden_size / tp, b)]
    return ops


def _block_tokens(t: VisionTower, image: VisionFlops) -> int:
    """Tokens each encoder block sees for one image: its patches, or for mllama every tile's patches plus the
    class token, padded to a multiple of 8."""
    if t.tiles is None:
        return image.patches
    tiles = image.tokens // t.position_rows
    return tiles * -(-t.position_rows // _MLLAMA_PAD_MULTIPLE) * _MLLAMA_PAD_MULTIPLE


def vision_encoder_time_s(t: VisionTower, accelerator: Accelerator, assumptions: PerformanceAssumptions, *,
                          compute_format: str, images: int, height: int | None = None, width: int | None = None,
                          tiles: int | None = None, tp: int = 1) -> float:
    """Roofline time of encoding ``images`` images before prefill (the tower's weights are read once per
    kernel; its TP all-reduces are not modelled)."""
    ops = vision_ops(t, images=images, height=height, width=width, tiles=tiles, tp=tp)
    return total_time_s(ops, accelerator, compute_format, assumptions)


def image_prompt_tokens(spec: ModelSpec, *, images: int, height: int | None = None, width: int | None = None,
                        tiles: int | None = None) -> int:
    """Prompt tokens ``images`` images add: their tokens (Qwen, Gemma 3), or one ``<|image|>`` token each
    where the language model reads the images through cross-attention (mllama)."""
    image = sequence_images(spec, images=images, seq=2**62, height=height, width=width, tiles=tiles)
    cross = spec.vision is not None and spec.vision.tiles is not None
    return images * (1 if cross else image.tokens)
