"""Vision-language models through the CLI: the vision component in ``params``, ``--images`` in ``flops`` and
``infer``, and one-line errors for images a model or a tower cannot take."""

from __future__ import annotations

import pytest
from tests.surface.cli_helpers import assert_one_line_error, run, run_json

from suanli.core.vision import vision_flops
from suanli.spec.resolve import load_model


def test_params_show_the_vision_component(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "params", "qwen2.5-vl-7b")
    assert payload["components_params"]["vision"] == 676_550_144
    assert payload["vision"]["params"] == sum(payload["vision"]["params_by_part"].values()) == 676_550_144
    assert payload["total_params"] == 8_292_166_656
    code, out, _ = run(capsys, "params", "gemma-3-27b-vision")
    assert code == 0 and "vision" in out


def test_flops_images_are_a_separate_figure(capsys: pytest.CaptureFixture[str]) -> None:
    text_only = run_json(capsys, "flops", "qwen2.5-vl-7b", "--seq", "1024")
    payload = run_json(capsys, "flops", "qwen2.5-vl-7b", "--seq", "1024", "--batch", "2", "--images", "2",
                       "--image-size", "448x672")
    tower = load_model("qwen2.5-vl-7b").vision
    assert tower is not None
    per_image = vision_flops(tower, height=448, width=672).forward
    vision = payload["vision"]
    assert vision["tokens_per_image"] == 32 * 48 // 4
    assert vision["forward_flops_per_image"] == pytest.approx(per_image)
    assert vision["forward_flops"] == pytest.approx(2 * 2 * per_image)
    assert payload["forward_flops"] == pytest.approx(2 * text_only["forward_flops"])  # image tokens are in --seq


def test_flops_mllama_images_feed_the_cross_attention(capsys: pytest.CaptureFixture[str]) -> None:
    text_only = run_json(capsys, "flops", "llama-3.2-11b-vision", "--seq", "512")
    payload = run_json(capsys, "flops", "llama-3.2-11b-vision", "--seq", "512", "--images", "1", "--tiles", "2")
    assert payload["vision"]["tokens_per_image"] == 2 * 1601
    assert payload["forward_flops"] > text_only["forward_flops"]  # the 8 cross-attention layers now run
    assert any("8 cross-attention layers are skipped" in note for note in text_only["notes"])
    assert not any("skipped" in note for note in payload["notes"])


def test_infer_images_join_the_prompt_and_the_ttft(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["infer", "gemma-3-27b-vision", "--gpu", "h100", "--prompt", "300", "--output", "20"]
    text_only = run_json(capsys, *base)
    payload = run_json(capsys, *base, "--images", "2")
    assert payload["prompt_tokens"] == 300 + 2 * 256
    assert payload["images"]["vision_encoder_s"] > 0
    assert payload["latency"]["ttft_s"] > text_only["latency"]["ttft_s"] + payload["images"]["vision_encoder_s"]
    assert payload["memory"]["per_gpu"]["weights_bytes"] == text_only["memory"]["per_gpu"]["weights_bytes"]


@pytest.mark.parametrize(("args", "fragment"), [
    (["flops", "llama-3.1-8b", "--seq", "128", "--images", "1"], "no vision tower"),
    (["flops", "qwen2.5-vl-7b", "--seq", "128", "--images", "1"], "--image-size"),
    (["flops", "qwen2.5-vl-7b", "--seq", "128", "--images", "1", "--image-size", "448"], "--seq 257"),
    (["flops", "qwen2.5-vl-7b", "--seq", "2048", "--images", "1", "--image-size", "450"], "use --image-size 448x448"),
    (["flops", "qwen2.5-vl-7b", "--seq", "2048", "--image-size", "448"], "--images"),
    (["flops", "qwen2.5-vl-7b", "--seq", "2048", "--images", "1", "--image-size", "4x"], "HEIGHTxWIDTH"),
    (["flops", "llama-3.2-11b-vision", "--seq", "128", "--images", "1", "--tiles", "9"], "max_num_tiles"),
    (["infer", "qwen3-vl-8b", "--gpu", "h100", "--images", "1"], "--image-size"),
])
def test_image_errors_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str], fragment: str) -> None:
    assert_one_line_error(*run(capsys, *args), fragment)
