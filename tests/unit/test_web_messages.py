"""The page's words come from the message catalogue: every key the page names (``data-i18n`` in index.html,
``tr``/``trf`` in app.js) exists in messages.toml in both languages, and the English the page falls back to is the
catalogue's English (so the English page and the catalogue never drift apart)."""

from __future__ import annotations

import html
import re
from importlib import resources

import pytest

from suanli.i18n import messages

STATIC = resources.files("suanli.web").joinpath("static")
PAGE = STATIC.joinpath("index.html").read_text(encoding="utf-8")
SCRIPT = STATIC.joinpath("app.js").read_text(encoding="utf-8")
# data-i18n="key">English<  /  data-i18n-placeholder="key" placeholder="English"
ELEMENT = re.compile(r'data-i18n="([\w.]+)"[^>]*>([^<]*)<')
PLACEHOLDER = re.compile(r'data-i18n-placeholder="([\w.]+)" placeholder="([^"]*)"')
# tr("key", "English") / trf("key", "English", {...}); a key built at run time (`web.fit.col${i}`) is checked below
CALL = re.compile(r'\btrf?\(\s*"([\w.]+)",\s*"((?:[^"\\]|\\.)*)"')
COLUMNS = re.compile(r'\[((?:"[^"]*",\s*)+"[^"]*")\]\.map\(\(h, i\) =>\s*el\("th", \{\}, tr\(`([\w.]+)\$\{i\}`, h\)\)')


def _pairs() -> list[tuple[str, str]]:
    pairs = [(k, html.unescape(v.strip())) for k, v in ELEMENT.findall(PAGE)]
    pairs += [(k, html.unescape(v)) for k, v in PLACEHOLDER.findall(PAGE)]
    pairs += [(k, v.encode().decode("unicode_escape") if "\\" in v else v) for k, v in CALL.findall(SCRIPT)]
    for names, prefix in COLUMNS.findall(SCRIPT):
        pairs += [(f"{prefix}{i}", name) for i, name in enumerate(re.findall(r'"([^"]*)"', names))]
    return pairs


PAIRS = _pairs()


def test_the_page_names_its_words() -> None:
    keys = {k for k, _ in PAIRS}
    assert len(keys) > 80  # the patterns above still find the page's words
    assert {"web.view.plan_serve", "web.timeline.title", "web.plan_serve.col7"} <= keys


@pytest.mark.parametrize(("key", "english"), PAIRS, ids=[k for k, _ in PAIRS])
def test_each_word_is_in_the_catalogue_in_both_languages(key: str, english: str) -> None:
    catalogue = messages()
    assert key in catalogue, f"{key} is used by the page but missing from messages.toml"
    assert catalogue[key]["en"] == english, f"{key}: the page says {english!r}, the catalogue {catalogue[key]['en']!r}"
    assert catalogue[key]["zh"].strip()
