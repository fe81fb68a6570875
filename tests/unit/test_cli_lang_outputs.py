"""``--lang zh`` says the headline, the advice, the notes and the table values of train, infer, fit, simulate,
plan train/serve/buy, flops and roofline in Chinese, and ``--json`` is the same object in every language.

The English phrases looked for are derived from the message catalogue: every literal run of words between the
``{fields}`` of a headline/advice/note/value message. A phrase the English output shows must not appear in the
Chinese output of the same command (unless the Chinese text of some message holds it too, as with option names)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from string import Formatter

import pytest
from tests.surface.cli_helpers import KeyedError

from suanli.cli.main import main
from suanli.i18n import messages

COMMANDS = {
    "train": ["train", "llama-3.1-70b", "--gpu", "h100", "--gpus", "8", "--tokens", "1e9"],
    "train-lora": ["train", "llama-3.1-8b", "--gpu", "h100", "--method", "lora", "--tokens", "1e9", "--micro-batch",
                   "2"],
    "infer": ["infer", "llama-3.1-70b", "--gpu", "h100", "--batch", "8", "--prompt", "4096", "--output", "512"],
    "infer-kv": ["infer", "llama-3.1-8b", "--gpu", "h100", "--batch", "64", "--prompt", "8192", "--output", "512"],
    "fit": ["fit", "llama-3.1-70b"],
    "fit-train": ["fit", "llama-3.1-8b", "--mode", "train"],
    "simulate": ["simulate", "llama-3.1-8b", "--gpu", "h100", "--concurrency", "4", "--requests", "12", "--prompt",
                 "256", "--output", "32", "--slo-ttft-ms", "100", "--slo-tpot-ms", "20"],
    "plan-train": ["plan", "train", "llama-3.2-1b", "--gpu", "h100", "--tokens", "1e9", "--max-gpus", "4"],
    "plan-serve": ["plan", "serve", "llama-3.1-70b", "--rate", "2", "--prompt", "512", "--output", "128",
                   "--slo-ttft-ms", "500", "--slo-tpot-ms", "20", "--gpu", "h100,a100"],
    "plan-buy": ["plan", "buy", "--budget-usd", "200000", "--train", "llama-3.1-8b", "--tokens", "1e10"],
    "flops": ["flops", "llama-3.1-8b", "--seq", "2048"],
    "roofline": ["roofline", "llama-3.1-8b", "--gpu", "h100"],
}
TRANSLATED = ("advice.", "headline.", "note.", "value.", "error.support.", "label.")


def _phrases() -> set[str]:
    """English runs of at least two words from the catalogue's translated messages, minus any that a Chinese
    message holds as well (option names, formats)."""
    chinese = "\n".join(entry["zh"] for entry in messages().values())
    found = set()
    for key, entry in messages().items():
        if not key.startswith(TRANSLATED):
            continue
        for literal, _, _, _ in Formatter().parse(entry["en"]):
            run = literal.strip(" ,;:()")
            if len(run) >= 8 and " " in run and any(c.isalpha() for c in run) and run not in chinese:
                found.add(run)
    return found


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_chinese_output_has_no_english_phrase_of_the_catalogue(name: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    english = _run([*COMMANDS[name], "--lang", "en"], capsys)
    chinese = _run([*COMMANDS[name], "--lang", "zh"], capsys)
    shown = {phrase for phrase in _phrases() if phrase in english}
    assert shown, "the English output uses catalogue phrases (else the check below proves nothing)"
    leaked = sorted(phrase for phrase in shown if phrase in chinese)
    assert not leaked, f"{name} --lang zh still says: {leaked}"
    for line in chinese.splitlines():
        assert not line.startswith(("note:", "fits with:", "DOES NOT FIT", "default:")), line


def test_headline_advice_and_notes_are_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run([*COMMANDS["train"], "--lang", "zh"], capsys)
    assert out.startswith("显存放不下：每卡需要 1.28 TiB，可用 79.6 GiB；最接近的可行方案：")
    assert "可以放下的方案：用 QLoRA（NF4 基座）代替全参数微调（加完全重计算） → 每卡 49.2 GiB" in out
    assert "\n注：放不下；以下改动可以放下：" in out
    out = _run([*COMMANDS["infer"], "--lang", "zh"], capsys)
    assert out.startswith("显存放不下：这个批次每卡需要 148.7 GiB；权重和额外开销占满了显存")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_json_does_not_change_with_the_language(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    payloads = [json.loads(_run([*COMMANDS[name], "--json", *lang], capsys))
                for lang in ([], ["--lang", "en"], ["--lang", "zh"])]
    assert payloads[0] == payloads[1] == payloads[2]


def test_json_keeps_the_english_notes(capsys: pytest.CaptureFixture[str]) -> None:
    payload = json.loads(_run([*COMMANDS["train"], "--json", "--lang", "zh"], capsys))
    assert payload["headline"].startswith("DOES NOT FIT: 1.28 TiB per GPU, 79.6 GiB available; nearest layout that "
                                          "fits: ")
    assert payload["notes"][0].startswith("does not fit; ") and payload["notes"][0].endswith(" would")
    assert payload["memory"]["suggestions"][-1]["change"] == ("QLoRA (NF4 base) instead of full fine-tuning "
                                                              "(+ full recompute)")


@pytest.mark.parametrize(("argv", "english", "chinese"), [
    (["train", "m", "--gpu", "h100", "--tp", "0"],
     "argument --tp: must be at least 1, got 0 (see `suanli train --help`)",
     "参数 --tp：至少为 1，实际为 0（参见 `suanli train --help`）"),
    (["train"], "the following arguments are required: MODEL, --gpu", "缺少必需的参数：MODEL, --gpu"),
    (["train", "m", "--gpu", "h100", "--recompute", "foo"],
     "argument --recompute: invalid choice: 'foo' (choose from 'none', 'selective', 'full')",
     "参数 --recompute：无效的取值：'foo'（可选：'none', 'selective', 'full'）"),
    (["train", "m", "--gpu", "h100", "--bogus"], "unrecognized arguments: --bogus", "无法识别的参数：--bogus"),
    (["params", "m", "--lang", "fr"], "argument --lang: unknown language 'fr'; use one of en, zh",
     "参数 --lang：未知语言 'fr'；请用 en 或 zh"),
])
def test_usage_errors_are_said_in_the_language_asked_for(argv: list[str], english: str, chinese: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    for lang, expected, prefix in (("en", english, "suanli: error: "), ("zh", chinese, "suanli: 错误: ")):
        with pytest.raises(SystemExit) as exit_info:
            main(["--lang", lang, *argv])  # a bad --lang after it leaves this one in force
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(prefix) and expected in err and err.count("\n") == 1, err


BAD = [  # (argv, the key it must raise); every one a mistake a user makes
    (["params", " "], "error.no_model"),
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--quant", "q9"], "error.unknown_number_format"),
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--quant", "fp8_e4m"], "error.unknown_number_format"),
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--ep", "2"], "error.cli.ep_dense"),
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--tp", "2", "--gpus", "4"], "error.cli.tp_gpus"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--pp", "4", "--vp", "3"], "error.layout.interleaved"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "6", "--tp", "4"], "error.cli.gpus_not_multiple"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--dp", "2"], "error.cli.gpus_product"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "64", "--pp", "64"], "error.layout.too_many_stages"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--global-batch", "12"], "error.layout.global_batch"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--ep", "2", "--gpus", "2"], "error.layout.ep_dense"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--price", "2"], "error.cli.cost_needs_tokens"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--rl", "ppo", "--teacher", "llama-3.2-1b"],
     "error.cli.rl_and_teacher"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--seq", "1000000"], "error.support.violation"),
    (["train", "llama-3.1-8b", "--gpu", "tpu-v5p", "--method", "qlora"], "error.support.violation"),
    (["train", "llama-3.1-8b", "--gpu", "v100", "--precision", "bf16"], "error.support.violation"),
    (["fit", "llama-3.1-8b", "--mode", "train", "--quant", "int4"], "error.cli.fit_formats"),
    (["fit", "llama-3.1-8b", "--vendor", "nvdia"], "error.unknown_vendor"),
    (["infer", "qwen2.5-vl-7b", "--gpu", "h100", "--images", "1"], "error.vision.size"),
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--images", "1"], "error.vision.no_tower"),
    (["gpus", "--kind", "gpx"], "error.unknown_kind"),
    (["simulate", "llama-3.1-8b", "--gpu", "h100", "--requests", "4"], "error.cli.traffic"),
    (["simulate", "llama-3.1-8b", "--gpu", "h100", "--rate", "1", "--pd", "1-3"], "error.cli.pd_format"),
    (["simulate", "llama-3.1-8b", "--gpu", "h100", "--rate", "1", "--gpus", "3", "--tp", "2"], "error.cli.gpus_tp"),
    (["simulate", "llama-3.1-70b", "--gpu", "rtx-4090", "--rate", "1"], "error.simulate.no_kv"),
    (["simulate", "llama-3.1-8b", "--gpu", "h100", "--rate", "1", "--requests", "10000000"],
     "error.simulate.max_requests"),
    (["simulate", "llama-3.1-8b", "--gpu", "h100", "--trace", "no-such-trace.jsonl"], "error.simulate.trace_missing"),
    (["plan", "train", "llama-3.1-70b", "--gpu", "rtx-4090", "--tokens", "1e9", "--max-gpus", "2"],
     "error.plan.nothing_fits"),
    (["plan", "train", "llama-3.2-1b", "--gpu", "h100", "--tokens", "1e10", "--max-gpus", "4", "--deadline-days",
      "0.01", "--budget-usd", "10"], "error.plan.constraints"),
    (["params", "llama-3.1-8b", "--as", "lama"], "error.unknown_family"),
    (["plan", "train", "llama-3.2-1b", "--gpu", "ascend-910b", "--tokens", "1e9", "--max-gpus", "4", "--objective",
      "cost"], "error.plan.unpriced"),
    (["plan", "serve", "llama-3.1-70b", "--rate", "50", "--prompt", "512", "--output", "128", "--slo-ttft-ms", "10",
      "--slo-tpot-ms", "2", "--gpu", "h100", "--max-gpus", "8"], "error.plan_serve.none"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--export", "foo", "out"], "error.export.unknown_target"),
    (["simulate", "llama-3.1-8b", "--gpu", "h100", "--rate", "1", "--speculative-mtp", "--speculative-model",
      "llama-3.2-1b"], "error.cli.speculative_both"),
    (["infer", "llama-3.1-8b", "--gpu", "locl"], "error.cli.did_you_mean_local"),
]


@pytest.mark.parametrize(("argv", "key"), BAD, ids=[key for _, key in BAD])
def test_keyed_errors_say_the_same_in_english_and_translate(argv: list[str], key: str,
                                                            keyed_error: KeyedError) -> None:
    keyed_error(argv, key)


CONFIGS = [  # (config.json text, the key its error names)
    ('{"model_type": "foobar_lm", "architectures": ["FoobarForCausalLM"]}', "error.unsupported"),
    ('{"model_type": "llama"}', "error.config_key_missing"),
    ('{"model_type": "llama", "hidden_size": "4096"}', "error.config_key_integer"),
    ('{"model_type": 7}', "error.config_model_type_not_text"),
    ("[1, 2]", "error.config_not_object"),
    ('{"hidden_size": 4096}', "error.config_no_model_type"),
]


@pytest.mark.parametrize(("text", "key"), CONFIGS, ids=[key for _, key in CONFIGS])
def test_config_errors_say_the_same_in_english_and_translate(text: str, key: str, tmp_path: Path,
                                                             keyed_error: KeyedError) -> None:
    config = tmp_path / "config.json"
    config.write_text(text, encoding="utf-8")
    keyed_error(["params", str(config)], key)


def test_a_bad_trace_line_is_named_in_chinese(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"arrival_s": 0, "prompt_tokens": 8, "output_tokens": 4}\n{"arrival_s": 1,\n', encoding="utf-8")
    argv = ["simulate", "llama-3.2-1b", "--gpu", "h100", "--trace", str(trace)]
    assert main([*argv, "--lang", "en"]) == 2
    assert f"trace {trace} line 2: not JSON (" in capsys.readouterr().err
    assert main([*argv, "--lang", "zh"]) == 2
    assert f"请求轨迹 {trace} 第 2 行：不是合法的 JSON（" in capsys.readouterr().err


def test_english_values_keep_their_wording(capsys: pytest.CaptureFixture[str]) -> None:
    """Table values now come from the catalogue; the English must read as it did (once said 'compute-bound-bound')."""
    out = _run([*COMMANDS["infer"], "--lang", "en"], capsys)
    assert re.search(r"\nlatency +TTFT [\d,.]+ ms \([\d,.]+–[\d,.]+, compute-bound\), TPOT [\d,.]+ ms "
                     r"\([\d,.]+–[\d,.]+, memory-bound\), end-to-end [\d,.]+ s\n", out), out
    out = _run([*COMMANDS["train"], "--lang", "en"], capsys)
    assert re.search(r"\nlayout +8× h100-sxm-80gb: tp 1 pp 1 dp 8 cp 1 ep 1, ZeRO-0, micro-batch 1, recompute none\n",
                     out), out
    assert "\nfits with: ZeRO-3 across the 8 data-parallel GPUs + full activation recomputation + ZeRO-Offload: " \
           "optimizer states to CPU memory → 27 GiB per GPU\n" in out


def _english_line_starts(english: str, chinese: str, labels: tuple[str, ...]) -> list[str]:
    """The lines of ``chinese`` that still start with one of the English ``labels`` the English output starts a
    line with (a check that fails when the English output lost them, so it cannot pass by printing nothing)."""
    shown = [label for label in labels if any(line.startswith(label) for line in english.splitlines())]
    assert shown, "the English output starts its lines with these labels (else the check proves nothing)"
    return [line for line in chinese.splitlines() if line.startswith(tuple(shown))]


def test_probe_says_its_labels_values_and_notes_in_chinese() -> None:
    from suanli.cli.probe_commands import _local, _render
    from suanli.i18n import Text, use_lang
    from suanli.measure.probe import MachineProbe, ProbedCpu, ProbedGpu

    cpu = ProbedCpu(model="AMD EPYC 9654 96-Core Processor", vendor_id="AuthenticAMD", family=25, cores=2,
                    logical_cpus=4, sockets=1, clock_hz=2.4e9, clock_source="cpuinfo cpu MHz", isa_flags=("avx2",),
                    memory_total_bytes=32 * 2**30, memory_available_bytes=None, catalog_key=None,
                    nearest_catalog_key="epyc-9654", match="no catalog CPU key or alias")
    gpu = ProbedGpu(index=0, vendor="NVIDIA", name="NVIDIA H100 80GB HBM3", memory_total_bytes=80 * 2**30,
                    catalog_key="h100-sxm-80gb", nearest_catalog_key=None, match="h100", ecc=True, mig_mode=False)
    outputs = {}
    for machine in (MachineProbe(gpus=(gpu,), cpu=cpu, driver_version="550.54", cuda_driver_version="12.4"),
                    MachineProbe(gpus=(), cpu=cpu, notes=(Text("note.probe.no_nvml"),))):
        for lang in ("en", "zh"):
            with use_lang(lang):
                outputs[lang, bool(machine.gpus)] = _render(machine, _local(machine))
    labels = ("gpus:", "driver:", "cpu ", "cores", "clock", "vector/matrix", "memory", "catalog", "peak TFLOP/s",
              "bandwidth", "calibration", "note:", "              local:")
    for with_gpu in (True, False):
        english, chinese = outputs["en", with_gpu], outputs["zh", with_gpu]
        assert not _english_line_starts(english, chinese, labels), chinese
        for words in ("usable", "logical CPUs", "none saved", "(estimated)", "not installed", " on "):
            assert words not in chinese, (words, chinese)
    assert "核心数         可用 2 个（4 个逻辑 CPU，1 个插槽）\n" in outputs["zh", False]
    assert "内存           32 GiB\n" in outputs["zh", False]  # host memory, not the GPU's 显存
    assert "本机：1 张 NVIDIA H100 80GB HBM3（h100-sxm-80gb）" in outputs["zh", True]
    assert "cores          2 usable (4 logical CPUs, 1 socket(s))\n" in outputs["en", False]


def test_measure_and_bench_tables_are_chinese() -> None:
    from suanli.cli.bench_commands import summary
    from suanli.cli.measure_commands import _render
    from suanli.i18n import Text, use_lang
    from suanli.spec.calibration import Calibration, GemmPoint

    payload = {"model": "tinyllama-stories15m", "mode": "infer", "device": "cpu", "gpu": "epyc-9654",
               "job": {"seq": 32, "batch": 1, "output_tokens": 8, "method": "full", "dtype": "fp32"},
               "predicted": {"peak_memory_bytes": 2**26, "ttft_s": 0.1, "tpot_s": 0.01},
               "measured": {"peak_memory_bytes": 2**26, "ttft_s": 0.2, "tpot_s": 0.02, "rss_delta_bytes": 2**27},
               "error": {"peak_memory_bytes": 0.0, "ttft_s": -0.5, "tpot_s": -0.5},
               "notes": [Text("note.measure.uncalibrated"), Text("note.measure.peak_cpu"),
                         Text("note.measure.spread", spread=0.37)]}
    profile = Calibration(device_name="x", device_key="local-x-1c", device_kind="cpu", torch_version="2", date="d",
                          copy_bytes_per_s=9e9, kernel_overhead_s=3e-6, eager_call_s=4e-5,
                          gemm=(GemmPoint(dtype="fp32", m=256, n=256, k=256, seconds=1.0, achieved_flops_per_s=1e11),))
    said = {}
    renders: dict[str, tuple[Callable[[], str], tuple[str, ...]]] = {
        "measure": (lambda: _render(payload), ("model", "run", "predicted for", "metric", "peak memory", "ttft",
                                               "tpot", "RSS high-water", "note:")),
        "bench": (lambda: summary(profile, Path("p.toml")), ("device", "gemm", "memory copy", "op dispatch",
                                                             "eager call", "profile"))}
    for name, (render, labels) in renders.items():
        with use_lang("en"):
            english = render()
        with use_lang("zh"):
            said[name] = chinese = render()
        assert not _english_line_starts(english, chinese, labels), chinese
        shown = {phrase for phrase in _phrases() if phrase in english}
        assert shown and not [phrase for phrase in shown if phrase in chinese], chinese
    run = "\n运行            在 cpu 上推理：批大小 1 × 序列长度 32，生成 8 个新 token，全参数，fp32\n"
    assert run in said["measure"]
    assert "\n拷贝带宽    9 GB/s（读 + 写）\n" in said["bench"]


WORDS = [  # (command, English words its English output shows and its Chinese output must not)
    (["roofline", "jamba-1.5-mini", "--gpu", "h100"], [" layer 0 ", " head ", "  memory\n", "  compute\n", " bytes "]),
    (["gpus", "h100", "--explain"], ["bf16 dense", "memory: physical capacity"]),
    (COMMANDS["plan-train"], [", mb 8, ", "recompute none"]),
    (["flops", "llama-3.1-8b", "--seq", "2048", "--tokens", "1e12"],
     ["2,048 tokens", "exact / 6ND", "attention_proj", "attention_scores", "training 1e+12 tokens"]),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--zero", "3", "--tokens", "1e10"], ["on-demand"]),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--zero", "3", "--tokens", "1e10", "--price", "2"],
     ["/GPU-h (--price)"]),
    (COMMANDS["plan-buy"], ["(msrp, ", " confidence)"]),
    (["params", "deepseek-v3"], ["multi-token-prediction", "shared_experts"]),
    (["params", "qwen2.5-vl-7b"], ["an image of H×W px", "the vision tower's weights are counted"]),
    (["flops", "qwen2.5-vl-7b", "--seq", "2048", "--images", "1", "--image-size", "448"],
     ["per image (", "prompt tokens (counted in --seq)", "not in the totals above"]),
    (["train", "llama-3.2-1b", "--gpu", "ascend-910b", "--tokens", "1e9"], ["no on-demand price", "(listed: none)"]),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--zero", "1", "--explain"],
     ["[roofline over the slowest", "[global batch × seq / step]", "[model FLOPs utilisation]"]),
    (COMMANDS["fit-train"], [", train, 2048 tokens"]),
    (COMMANDS["train"], ["full, mixed-bf16"]),
    (COMMANDS["plan-train"], ["full, mixed-bf16"]),
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--explain"],
     ["[prefill, compute-bound]", "[mean decode step, memory-bound]", "[static batch]"]),
]


@pytest.mark.parametrize(("argv", "words"), WORDS, ids=[" ".join(argv[:2]) for argv, _ in WORDS])
def test_values_notes_and_components_are_chinese(argv: list[str], words: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    english = _run([*argv, "--lang", "en"], capsys)
    chinese = _run([*argv, "--lang", "zh"], capsys)
    for word in words:
        assert word in english, (word, english)  # the English still says it (else the check proves nothing)
        assert word not in chinese, (word, chinese)


def test_every_choice_said_through_a_term_has_its_message() -> None:
    """The CLI says these choices through ``term.<kind>.<value>``: a new choice without its message would stop the
    command with a KeyError."""
    from typing import get_args

    from suanli.spec.hardware import PriceKind
    from suanli.spec.purchase import PurchaseConfidence, PurchaseKind
    from suanli.spec.training import Method

    wanted = ([f"term.method.{m.value}" for m in Method] + [f"term.price_kind.{k}" for k in get_args(PriceKind)]
              + [f"term.purchase_kind.{k}" for k in get_args(PurchaseKind)]
              + [f"term.confidence.{c}" for c in get_args(PurchaseConfidence)]
              + [f"term.fit_mode.{m}" for m in ("infer", "train", "lora", "qlora")]
              + [f"term.measure_mode.{m}" for m in ("train", "infer")])
    assert not [key for key in wanted if key not in messages()]


def test_the_weight_files_line_is_chinese(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import struct

    from suanli.spec.resolve import catalog_config, find_catalog_model

    entry = find_catalog_model("tinyllama-stories15m")
    assert entry is not None
    (tmp_path / "config.json").write_text(json.dumps(catalog_config(entry)), encoding="utf-8")
    header = json.dumps({"embed.weight": {"dtype": "BF16", "shape": [4, 8], "data_offsets": [0, 64]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(64))
    english = _run(["params", str(tmp_path), "--lang", "en"], capsys)
    chinese = _run(["params", str(tmp_path), "--lang", "zh"], capsys)
    assert re.search(r"\nweight files store +32 params, 64 bytes\n", english), english
    assert re.search(r"\n权重文件实存 +32 个参数，64 字节\n", chinese), chinese
