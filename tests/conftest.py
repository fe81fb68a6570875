"""Shared fixtures: tiny configs whose counts are derived by hand in the tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

KeyedError = Callable[[list[str], str], Exception]


@pytest.fixture
def tiny_llama() -> dict[str, Any]:
    """2 layers, hidden 64, 4 heads of 16, 2 KV heads, SwiGLU 128, vocab 100, untied."""
    return {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
            "max_position_embeddings": 256, "tie_word_embeddings": False}


@pytest.fixture
def keyed_error(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> KeyedError:
    """``keyed_error(argv, key)``: the command fails (exit 2) with the error ``key``; its English line is the
    catalogue's English filled with the error's fields, and its ``--lang zh`` line is the catalogue's Chinese, one
    line each. Returns the error, for checks of its fields."""
    from suanli.cli import lang_option
    from suanli.cli.main import main
    from suanli.i18n import Lang, error_text

    def check(argv: list[str], key: str) -> Exception:
        raised: list[Exception] = []
        original = lang_option.error_line

        def recording(exc: Exception, lang: Lang) -> str:
            raised.append(exc)
            return original(exc, lang)

        monkeypatch.setattr(lang_option, "error_line", recording)
        assert main([*argv, "--lang", "en"]) == 2
        english = capsys.readouterr().err
        assert main([*argv, "--lang", "zh"]) == 2
        chinese = capsys.readouterr().err
        exc = raised[0]
        assert getattr(exc, "key", "") == key, str(exc)
        fields = getattr(exc, "fields", {})
        assert error_text(key, fields, "en") == str(exc)  # the catalogue's English is the message
        assert english == f"suanli: error: {exc}\n"
        assert chinese == f"suanli: 错误: {error_text(key, fields, 'zh')}\n"
        return exc

    return check
