"""The vision side of a vision-language model: the image encoder ("tower") and the projector that turns its
features into what the language model reads.

A ``VisionTower`` is a ViT: a patch embedding (a convolution whose stride equals its kernel, i.e. one matmul per
patch), optional learned positions, a stack of encoder ``Layer``s (the same block type the language model uses:
attention without a causal mask, an MLP, two norms), tower-level norms, and one or more ``Projector``s. What
differs between families is named here, never guessed:

- Qwen2.5-VL: 3-D patches (``temporal_patch_size`` frames), 2-D RoPE, window attention in every block not
  listed in ``full_attention_layers``, a merger that concatenates 2×2 neighbouring patches (``merge``).
- Qwen3-VL: a learned position table (interpolated to the grid), full attention, and DeepStack: extra mergers
  on the outputs of ``deepstack_layers`` whose tokens are added into the first language-model layers.
- Llama 3.2 Vision (mllama): square tiles of ``image_size`` pixels (up to ``Tiles.max_tiles`` per image), a
  class token, tile and aspect-ratio position tables, a local encoder followed by gated global layers, and
  features of ``feature_layers`` concatenated before a single projection; the language model reads them through
  cross-attention layers, not as prompt tokens.
- Gemma 3: a SigLIP encoder at a fixed ``image_size`` with a learned position per patch, then an average pool
  (``pool`` × ``pool`` patches) and one projection matrix, giving ``mm_tokens_per_image`` prompt tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from suanli.errors import SpecError, require_positive
from suanli.spec.model import Layer, Norm


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchEmbed:
    """``Conv2d``/``Conv3d`` with stride = kernel: each patch of ``in_channels × temporal_patch_size × patch_size²``
    pixels is one row of a matmul into the tower width."""

    patch_size: int
    temporal_patch_size: int = 1
    in_channels: int = 3
    bias: bool = False

    def __post_init__(self) -> None:
        require_positive("patch_size", self.patch_size)
        require_positive("temporal_patch_size", self.temporal_patch_size)
        require_positive("in_channels", self.in_channels)

    @property
    def pixels_per_patch(self) -> int:
        return self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size


@dataclass(frozen=True, slots=True, kw_only=True)
class Projector:
    """Vision features → the language model's width: an optional norm, then one matrix (``hidden_size`` None)
    or a two-matrix MLP (Qwen's mergers: in → hidden → out with a GELU between). ``in_size`` is the width
    entering the first matrix (after the merger concatenates neighbouring patches)."""

    in_size: int
    out_size: int
    hidden_size: int | None = None
    norm: Norm | None = None
    bias: bool = True
    linear: bool = True  # an nn.Linear (PEFT's all-linear adapts it); Gemma 3's is a bare weight matrix

    def __post_init__(self) -> None:
        require_positive("projector in_size", self.in_size)
        require_positive("projector out_size", self.out_size)
        if self.hidden_size is not None:
            require_positive("projector hidden_size", self.hidden_size)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tiles:
    """mllama's tiling: an image becomes up to ``max_tiles`` square tiles, laid out in one of
    ``aspect_ratios`` arrangements; each arrangement id (plus the padding id 0) has learned tile embeddings."""

    max_tiles: int
    aspect_ratios: int

    def __post_init__(self) -> None:
        require_positive("max_num_tiles", self.max_tiles)
        require_positive("supported_aspect_ratios", self.aspect_ratios)


@dataclass(frozen=True, slots=True, kw_only=True)
class VisionTower:
    """An image encoder and its projector(s); see the module docstring for what each field means per family."""

    hidden_size: int
    layers: tuple[Layer, ...]
    patch: PatchEmbed
    projectors: tuple[Projector, ...]
    image_size: int | None = None  # fixed square input side in pixels (SigLIP, mllama tiles); None: dynamic
    position_rows: int = 0  # learned absolute position table (SigLIP: one per patch; Qwen3-VL: interpolated)
    class_token: bool = False
    norms: tuple[Norm, ...] = ()  # norms outside the blocks (SigLIP post_layernorm; mllama pre/post)
    merge: int = 1  # the merger concatenates merge × merge neighbouring patches into one token (Qwen: 2)
    pool: int = 1  # average pool of pool × pool patches before projecting (Gemma 3: 4)
    full_attention_layers: tuple[int, ...] | None = None  # Qwen2.5-VL: the others attend within windows
    window_patches: int | None = None  # side of an attention window in patches (Qwen2.5-VL: 112 px / 14)
    deepstack_layers: tuple[int, ...] = ()  # Qwen3-VL: blocks whose outputs feed the extra mergers
    feature_layers: tuple[int, ...] = ()  # mllama: blocks whose outputs join the final features
    tiles: Tiles | None = None
    fused_qkv: bool = False  # one qkv nn.Linear per block (Qwen), or separate q/k/v (SigLIP, mllama)

    def __post_init__(self) -> None:
        require_positive("vision hidden_size", self.hidden_size)
        require_positive("vision merge size", self.merge)
        require_positive("vision pool size", self.pool)
        if not self.layers:
            raise SpecError("a vision tower needs at least one encoder layer (depth / num_hidden_layers > 0)",
                            key="error.model.vision_no_layers")
        if not self.projectors:
            raise SpecError("a vision tower needs a projector into the language model's width",
                            key="error.model.vision_no_projector")
        depth = len(self.layers)
        for name, indexes in (("fullatt_block_indexes", self.full_attention_layers or ()),
                              ("deepstack_visual_indexes", self.deepstack_layers),
                              ("intermediate_layers_indices", self.feature_layers)):
            bad = [i for i in indexes if not 0 <= i < depth]
            if bad:
                raise SpecError(f"vision {name} {bad} are outside the tower's {depth} layers (0..{depth - 1})",
                                key="error.model.vision_indexes",
                                fields={"key": name, "bad": bad, "depth": depth, "last": depth - 1})
        if self.full_attention_layers is not None and self.window_patches is None:
            raise SpecError("window attention needs a window size (vision_config.window_size)",
                            key="error.model.vision_window")

    @property
    def depth(self) -> int:
        return len(self.layers)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Patches per column and per row for an image of ``height`` × ``width`` pixels, already resized as the
        processor does: both sides whole multiples of patch_size × merge (Qwen: 28 or 32 px)."""
        unit = self.patch.patch_size * self.merge
        if height % unit or width % unit:
            near_h, near_w = (max(unit, round(side / unit) * unit) for side in (height, width))
            raise SpecError(f"image {height}x{width} px is not a whole number of {unit}-px units (patches of "
                            f"{self.patch.patch_size} px merged {self.merge}×{self.merge}); the processor resizes "
                            f"it to {near_h}x{near_w}: use --image-size {near_h}x{near_w}",
                            key="error.model.image_grid",
                            fields={"height": height, "width": width, "unit": unit, "patch": self.patch.patch_size,
                                    "merge": self.merge, "near_h": near_h, "near_w": near_w})
        return height // self.patch.patch_size, width // self.patch.patch_size
