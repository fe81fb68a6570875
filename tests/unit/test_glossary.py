"""The glossary of ``suanli explain``: every concept of the project's list is covered in both languages, every live
example runs and quotes the number its command prints, and bad terms exit 2 with the closest terms."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from suanli.cli.main import main
from suanli.errors import NotFound
from suanli.glossary import SECTIONS, Entry, format_value, json_path, load_glossary, lookup, run_example

SEED_TERMS = Path(__file__).parents[1] / "data" / "seed_concepts_terms.txt"
CJK = re.compile(r"[\u4e00-\u9fff]")
ENTRIES = load_glossary()


def _seed_terms() -> list[str]:
    lines = SEED_TERMS.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("term", _seed_terms())
def test_every_seed_concept_has_an_entry(term: str) -> None:
    assert lookup(term) in ENTRIES


def test_ids_and_names_are_unique_across_entries() -> None:
    ids = [e.id for e in ENTRIES]
    assert len(ids) == len(set(ids))
    owners: dict[str, set[str]] = {}
    for entry in ENTRIES:
        for name in entry.names():
            owners.setdefault("".join(name.casefold().replace("-", " ").replace("_", " ").split()), set()).add(entry.id)
    assert {name: ids for name, ids in owners.items() if len(ids) > 1} == {}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_every_entry_is_in_both_languages(entry: Entry) -> None:
    assert entry.section in SECTIONS
    assert entry.en and not CJK.search(entry.en), "the English text holds no Chinese"
    assert CJK.search(entry.zh), "the Chinese text is Chinese"
    assert entry.name_zh.strip() and entry.name_en.strip()
    sentences = len(re.findall(r"[.!?](\s|$)", entry.en))
    assert 1 <= sentences <= 5, f"{entry.id}: {sentences} sentences"
    for text in (entry.example.en, entry.example.zh):
        assert "{value}" in text
    assert CJK.search(entry.example.zh) and not CJK.search(entry.example.en)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_live_example_matches_the_command_it_names(entry: Entry, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_example(entry.example)
    assert result.command.startswith("suanli ") and result.command.endswith(" --json")
    capsys.readouterr()
    assert main(result.command.split()[1:]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert float(json_path(printed, entry.example.path)) == result.value
    assert result.shown in result.sentence(entry.example, "en")
    assert result.shown in result.sentence(entry.example, "zh")


def test_kv_cache_example_is_the_hand_derived_size() -> None:
    """Llama-3.1-8B: 32 layers × 2 (K, V) × 8 KV heads × 128 head_dim × 2 bytes = 131,072 B per token; vLLM
    allocates 16-token blocks, so 8,192 + 1 tokens hold 513 blocks = 8,208 tokens."""
    assert run_example(lookup("gqa").example).value == 32 * 2 * 8 * 128 * 2
    assert run_example(lookup("KV 缓存").example).value == 513 * 16 * 131_072


def test_lora_example_is_the_hand_derived_count() -> None:
    """Rank 16 on q, k, v, o, gate, up, down of Llama-3.1-8B (hidden 4,096, KV width 1,024, MLP 14,336):
    r·(in + out) per matrix, 32 layers."""
    per_layer = 16 * (2 * (4096 + 4096) + 2 * (4096 + 1024) + 3 * (4096 + 14336))
    assert run_example(lookup("lora").example).value == 32 * per_layer


def test_lookup_ignores_case_spacing_and_takes_chinese() -> None:
    assert lookup("ZeRO 3") is lookup("zero_3") is lookup("参数分片")
    assert lookup("张量并行").id == "tp"
    assert lookup("首字延迟").id == "ttft"


def test_unknown_term_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(NotFound, match="did you mean zero-3"):
        lookup("zreo-3")
    assert main(["explain", "zreo-3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean zero-3" in err
    assert main(["explain", "张量平行", "--lang", "zh"]) == 2
    assert "你要找的是不是 张量并行" in capsys.readouterr().err


def test_explain_prints_the_chosen_language(capsys: pytest.CaptureFixture[str]) -> None:
    entry = lookup("kv-cache")
    assert main(["explain", "kv-cache", "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert entry.zh in out and entry.en not in out and "示例" in out
    assert main(["--lang", "en", "explain", "KV 缓存", "--no-example"]) == 0
    out = capsys.readouterr().out
    assert entry.en in out and "suanli infer llama-3.1-8b" in out


def test_explain_json_keys_do_not_change_with_the_language(capsys: pytest.CaptureFixture[str]) -> None:
    payloads = []
    for lang in ("zh", "en"):
        assert main(["explain", "ttft", "--json", "--lang", lang]) == 0
        payloads.append(json.loads(capsys.readouterr().out))
    assert payloads[0] == payloads[1]
    assert {"term", "zh", "en", "example"} <= set(payloads[0])
    assert payloads[0]["example"]["value"] > 0


def test_explain_list_names_every_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--list", "--json"]) == 0
    terms = json.loads(capsys.readouterr().out)["terms"]
    assert [t["term"] for t in terms] == [e.id for e in ENTRIES]
    assert main(["explain", "--list", "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert "硬件基石" in out and "张量并行（TP）" in out


def test_explain_without_a_term_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain"]) == 2
    assert "suanli explain --list" in capsys.readouterr().err


def test_json_path_and_formats() -> None:
    payload = {"rows": [{"gpu": "a", "n": 1}, {"gpu": "b", "n": 2}], "x": {"y": [5, 6]}}
    assert json_path(payload, "rows.gpu=b.n") == 2
    assert json_path(payload, "x.y.1") == 6
    assert format_value(2**30, "bytes") == "1 GiB"
    assert format_value(0.3725, "percent") == "37.2%"
    with pytest.raises(ValueError, match="glossary unit"):
        format_value(1, "furlongs")
