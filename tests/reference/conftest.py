"""Reference tests need torch and transformers (the `test` extra); without them they are skipped."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
