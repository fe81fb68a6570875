"""A calibration profile: what ``suanli bench`` measured on one device, as validated frozen data and a TOML file.

The profile holds measurements only (GEMM throughput by shape and dtype, memory-copy bandwidth, host<->device
bandwidth, all-reduce bus bandwidth); ``suanli.core.calibrate`` turns them into the accelerator peaks and
efficiencies the time model uses. No torch here: ``suanli.measure.bench`` measures, this module stores and reads.

Where profiles live: ``--out PATH`` when given; otherwise ``suanli bench`` saves to ``calibration_dir()/<key>.toml``
(``$SUANLI_CALIBRATION_DIR``, else ``$XDG_CACHE_HOME/suanli/calibration``, else ``~/.cache/suanli/calibration``),
where ``find_profile(key)`` finds it again for ``--gpu local``.

File layout (``schema = 1``)::

    schema = 1
    [device]   name = "...", key = "<catalog key>", kind = "cpu" | "cuda", count = 1
    [run]      torch_version = "...", date = "2026-12-03T12:00:00+00:00", quick = true, warnings = ["..."]
    [memory]   copy_bytes_per_s = 1.2e10            # (bytes read + bytes written) / time of a large copy
               h2d_bytes_per_s = ..., d2h_bytes_per_s = ...   # pinned host<->device copies, CUDA only
    [[gemm]]   dtype = "bf16", m = 1024, n = 1024, k = 1024, seconds = ..., achieved_flops_per_s = ...
    [[allreduce]] bytes = ..., world_size = 2, busbw_bytes_per_s = ...   # several GPUs only
    [dispatch] kernel_overhead_s = 8e-6   # optional: wall time of one tiny eager op with autograd (CPU)
               eager_call_s = 1e-5        # optional: per call of a tiny eager transformers training step (CPU)
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args

from suanli.errors import SpecError
from suanli.i18n import Text

SCHEMA = 1
DeviceKind = Literal["cpu", "cuda"]
GemmDtype = Literal["fp32", "tf32", "bf16", "fp16", "fp8"]
#: Relative disagreement allowed between a GEMM point's achieved rate and 2·m·n·k / seconds (rounding in the file).
_CONSISTENCY = 0.01
_FIX = "fix the value or measure again with `suanli bench --out PROFILE.toml`"  # its zh: i18n/errors/hardware.toml


def _missing() -> Text:
    """The problem "is missing", said in the reader's language."""
    return Text("fix.calibration_profile.missing")


@dataclass(frozen=True, slots=True, kw_only=True)
class GemmPoint:
    """One timed matmul C[m,n] = A[m,k] @ B[k,n]: 2·m·n·k FLOPs (a multiply-add is 2 FLOPs) in ``seconds``."""

    dtype: GemmDtype
    m: int
    n: int
    k: int
    seconds: float
    achieved_flops_per_s: float

    @property
    def flops(self) -> float:
        """2·m·n·k, the convention of every FLOP count in suanli."""
        return 2.0 * self.m * self.n * self.k


@dataclass(frozen=True, slots=True, kw_only=True)
class AllReducePoint:
    """One all-reduce of ``bytes`` across ``world_size`` local GPUs. Bus bandwidth = bytes / time · 2(n-1)/n,
    the figure nccl-tests reports (NVIDIA nccl-tests doc/PERFORMANCE.md), comparable to a link's peak."""

    bytes: int
    world_size: int
    busbw_bytes_per_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """What ``suanli bench`` measured on one device (``device_key``: its catalog key, as ``--gpu`` takes it)."""

    device_name: str
    device_key: str
    device_kind: DeviceKind
    device_count: int = 1
    torch_version: str
    date: str
    quick: bool = False
    warnings: tuple[str, ...] = ()
    copy_bytes_per_s: float
    h2d_bytes_per_s: float | None = None
    d2h_bytes_per_s: float | None = None
    gemm: tuple[GemmPoint, ...]
    allreduce: tuple[AllReducePoint, ...] = ()
    kernel_overhead_s: float | None = None  # one tiny eager op's wall time: the per-op cost, not the op's work
    eager_call_s: float | None = None  # per top-level call of a tiny eager transformers training step (CPU)

    def __post_init__(self) -> None:
        if not self.gemm:
            raise SpecError("a calibration profile needs at least one [[gemm]] point; " + _FIX,
                            key="error.calibration_profile.no_gemm")
        if self.device_count < 1:
            raise SpecError(f"calibration device count must be at least 1, got {self.device_count}",
                            key="error.calibration_profile.device_count", fields={"count": self.device_count})

    def gemm_points(self, dtype: str) -> tuple[GemmPoint, ...]:
        """The GEMM points measured in ``dtype``, smallest first."""
        return tuple(sorted((p for p in self.gemm if p.dtype == dtype), key=lambda p: p.flops))

    @property
    def dtypes(self) -> tuple[str, ...]:
        """The dtypes with at least one GEMM point, in the order first measured."""
        return tuple(dict.fromkeys(p.dtype for p in self.gemm))


# ---------------------------------------------------------------- where profiles live

def calibration_dir() -> Path:
    """``$SUANLI_CALIBRATION_DIR``, else ``$XDG_CACHE_HOME/suanli/calibration``, else
    ``~/.cache/suanli/calibration``."""
    if explicit := os.environ.get("SUANLI_CALIBRATION_DIR"):
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "suanli" / "calibration"


def default_profile_path(device_key: str) -> Path:
    """Where ``suanli bench`` saves the profile of ``device_key`` when no ``--out`` is given."""
    return calibration_dir() / f"{device_key}.toml"


def find_profile(device_key: str) -> Path | None:
    """The saved profile of ``device_key`` (``default_profile_path``) if one exists, else None."""
    path = default_profile_path(device_key)
    return path if path.is_file() else None


# ---------------------------------------------------------------- writing

def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _table(header: str, values: Mapping[str, object]) -> list[str]:
    return [header, *(f"{key} = {_value(v)}" for key, v in values.items() if v is not None), ""]


def to_toml(calibration: Calibration) -> str:
    """The profile as TOML text (the layout in the module docstring); ``load_calibration`` reads it back."""
    c = calibration
    lines = [f"# suanli calibration profile: {c.device_name}", f"schema = {SCHEMA}", ""]
    lines += _table("[device]", {"name": c.device_name, "key": c.device_key, "kind": c.device_kind,
                                 "count": c.device_count})
    lines += _table("[run]", {"torch_version": c.torch_version, "date": c.date, "quick": c.quick,
                              "warnings": list(c.warnings)})
    lines += _table("[memory]", {"copy_bytes_per_s": c.copy_bytes_per_s, "h2d_bytes_per_s": c.h2d_bytes_per_s,
                                 "d2h_bytes_per_s": c.d2h_bytes_per_s})
    for p in c.gemm:
        lines += _table("[[gemm]]", {"dtype": p.dtype, "m": p.m, "n": p.n, "k": p.k, "seconds": p.seconds,
                                     "achieved_flops_per_s": p.achieved_flops_per_s})
    for a in c.allreduce:
        lines += _table("[[allreduce]]", {"bytes": a.bytes, "world_size": a.world_size,
                                          "busbw_bytes_per_s": a.busbw_bytes_per_s})
    if c.kernel_overhead_s is not None or c.eager_call_s is not None:
        lines += _table("[dispatch]", {"kernel_overhead_s": c.kernel_overhead_s, "eager_call_s": c.eager_call_s})
    return "\n".join(lines)


def write_calibration(calibration: Calibration, path: Path) -> Path:
    """Write the profile to ``path`` (parent folders made) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_toml(calibration), encoding="utf-8")
    return path


# ---------------------------------------------------------------- reading, strictly

class _Reader:
    """Reads one table of a profile; every complaint names the file and the exact key, and says how to fix it."""

    def __init__(self, source: str, where: str, table: object) -> None:
        self.source, self.where = source, where
        if not isinstance(table, dict):
            self.fail(where, Text("fix.calibration_profile.not_table", type=type(table).__name__))
        self.table: dict[str, Any] = table

    def fail(self, key: str, problem: Text) -> NoReturn:
        raise SpecError(f"calibration profile {self.source}: {key} {problem}; {_FIX}",
                        key="error.calibration_profile.bad_value",
                        fields={"source": self.source, "name": key, "problem": problem})

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        if unknown := sorted(set(self.table) - set(allowed)):
            self.fail(self.name(unknown[0]), Text("fix.calibration_profile.unknown_key", known=", ".join(allowed)))

    def text(self, key: str, *, choices: Any = None) -> str:
        value = self.table.get(key)
        if not isinstance(value, str) or not value.strip():
            problem = _missing() if value is None else Text("fix.calibration_profile.not_text", value=value)
            self.fail(self.name(key), problem)
        if choices is not None and value not in get_args(choices):
            self.fail(self.name(key), Text("fix.calibration_profile.not_one_of", value=value,
                                           choices=", ".join(get_args(choices))))
        return str(value)

    def optional_number(self, key: str) -> float | None:
        return None if self.table.get(key) is None else self.number(key)

    def number(self, key: str) -> float:
        value = self.table.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            problem = _missing() if value is None else Text("fix.calibration_profile.not_positive", value=value)
            self.fail(self.name(key), problem)
        return float(value)

    def count(self, key: str, *, default: int | None = None) -> int:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problem = _missing() if value is None else Text("fix.calibration_profile.not_count", value=value)
            self.fail(self.name(key), problem)
        return value

    def flag(self, key: str) -> bool:
        value = self.table.get(key, False)
        if not isinstance(value, bool):
            self.fail(self.name(key), Text("fix.calibration_profile.not_flag", value=value))
        return bool(value)

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(self.name(key), Text("fix.calibration_profile.not_strings", value=value))
        return tuple(value)

    def rows(self, key: str) -> list[object]:
        value = self.table.get(key, [])
        if not isinstance(value, list):
            self.fail(key, Text("fix.calibration_profile.not_rows", table=key))
        return list(value)


def _gemm(source: str, index: int, row: object) -> GemmPoint:
    r = _Reader(source, f"gemm[{index}]", row)
    r.check_keys(("dtype", "m", "n", "k", "seconds", "achieved_flops_per_s"))
    point = GemmPoint(dtype=r.text("dtype", choices=GemmDtype), m=r.count("m"), n=r.count("n"), k=r.count("k"),  # type: ignore[arg-type]
                      seconds=r.number("seconds"), achieved_flops_per_s=r.number("achieved_flops_per_s"))
    expected = point.flops / point.seconds
    if abs(point.achieved_flops_per_s - expected) > _CONSISTENCY * expected:
        r.fail(r.name("achieved_flops_per_s"), Text("fix.calibration_profile.inconsistent",
                                                    achieved=point.achieved_flops_per_s, expected=expected))
    return point


def _allreduce(source: str, index: int, row: object) -> AllReducePoint:
    r = _Reader(source, f"allreduce[{index}]", row)
    r.check_keys(("bytes", "world_size", "busbw_bytes_per_s"))
    world = r.count("world_size")
    if world < 2:
        r.fail(r.name("world_size"), Text("fix.calibration_profile.allreduce_world", world=world))
    return AllReducePoint(bytes=r.count("bytes"), world_size=world, busbw_bytes_per_s=r.number("busbw_bytes_per_s"))


def parse_calibration(data: Mapping[str, object], *, source: str = "<profile>") -> Calibration:
    """A ``Calibration`` from the parsed TOML ``data``; a missing, unknown or malformed key is a SpecError naming it."""
    top = _Reader(source, "", dict(data))
    top.check_keys(("schema", "device", "run", "memory", "gemm", "allreduce", "dispatch"))
    if top.table.get("schema") != SCHEMA:
        top.fail("schema", Text("fix.calibration_profile.schema", value=top.table.get("schema"), schema=SCHEMA))
    for table in ("device", "run", "memory"):
        if table not in top.table:
            top.fail(f"[{table}]", _missing())
    device = _Reader(source, "device", top.table["device"])
    device.check_keys(("name", "key", "kind", "count"))
    run = _Reader(source, "run", top.table["run"])
    run.check_keys(("torch_version", "date", "quick", "warnings"))
    memory = _Reader(source, "memory", top.table["memory"])
    memory.check_keys(("copy_bytes_per_s", "h2d_bytes_per_s", "d2h_bytes_per_s"))
    dispatch = _Reader(source, "dispatch", top.table.get("dispatch", {}))
    dispatch.check_keys(("kernel_overhead_s", "eager_call_s"))
    gemm = tuple(_gemm(source, i, row) for i, row in enumerate(top.rows("gemm")))
    if not gemm:
        top.fail("[[gemm]]", Text("fix.calibration_profile.no_gemm"))
    return Calibration(
        device_name=device.text("name"), device_key=device.text("key"),
        device_kind=device.text("kind", choices=DeviceKind), device_count=device.count("count", default=1),  # type: ignore[arg-type]
        torch_version=run.text("torch_version"), date=run.text("date"), quick=run.flag("quick"),
        warnings=run.strings("warnings"), copy_bytes_per_s=memory.number("copy_bytes_per_s"),
        h2d_bytes_per_s=memory.optional_number("h2d_bytes_per_s"),
        d2h_bytes_per_s=memory.optional_number("d2h_bytes_per_s"), gemm=gemm,
        allreduce=tuple(_allreduce(source, i, row) for i, row in enumerate(top.rows("allreduce"))),
        kernel_overhead_s=dispatch.optional_number("kernel_overhead_s"),
        eager_call_s=dispatch.optional_number("eager_call_s"))


def load_calibration(path: str | Path) -> Calibration:
    """Read and validate the profile at ``path``. A missing file, bad TOML or a bad key is a SpecError (exit 2)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"calibration profile {path} does not exist; make one with "
                        f"`suanli bench --out {path}`", key="error.calibration_profile.missing_file",
                        fields={"path": str(path)}) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"calibration profile {path} cannot be read ({exc}); pass a TOML file written by suanli bench",
                        key="error.calibration_profile.unreadable", fields={"path": str(path), "reason": str(exc)})\
            from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"calibration profile {path} is not valid TOML ({exc}); {_FIX}",
                        key="error.calibration_profile.not_toml",
                        fields={"path": str(path), "reason": str(exc)}) from None
    return parse_calibration(data, source=str(path))
