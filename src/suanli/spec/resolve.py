"""Turn what a user types as MODEL into a ``ModelSpec``.

MODEL may be, tried in this order:

1. a path to a ``config.json`` file;
2. a path to a ``.gguf`` file (header only: architecture, tensor types, exact bytes);
3. a model directory holding config.json, plus ``*.safetensors`` headers when present (exact stored counts);
4. a bundled catalog name or alias (case-insensitive), see ``catalog/models.toml``;
5. a Hugging Face repo id ``org/name``: the local HF cache first, then the Hub (config.json only) when
   ``huggingface_hub`` is installed and the network is reachable.

Unknown names get the closest catalog names as suggestions.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import tomllib
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from suanli.errors import ConfigError, Unavailable, UnknownModel, close_matches, suggest
from suanli.spec.hf import spec_from_config
from suanli.spec.model import ModelSpec

if TYPE_CHECKING:
    from suanli.spec.gguf import GgufFile
    from suanli.spec.weights_file import StoredWeights


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogModel:
    """One bundled model: its config file, names, and the publisher's stated size with its source."""

    key: str
    aliases: tuple[str, ...]
    hf_repo: str
    config_file: str
    family: str
    release_year: int
    stated_params: float
    stated_params_source: str
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedModel:
    """A ModelSpec plus what was learned on the way: where it came from and, for weight files, what the
    files actually store."""

    spec: ModelSpec
    origin: str  # "catalog", "config", "directory", "gguf", "hf-cache" or "hub"
    catalog: CatalogModel | None = None
    stored: StoredWeights | None = None
    gguf: GgufFile | None = None


@cache
def model_catalog() -> tuple[CatalogModel, ...]:
    """The bundled models, in the index's order."""
    text = resources.files("suanli.catalog").joinpath("models.toml").read_text(encoding="utf-8")
    return tuple(_catalog_entry(raw) for raw in tomllib.loads(text)["model"])


def _catalog_entry(raw: dict[str, Any]) -> CatalogModel:
    return CatalogModel(key=raw["key"], aliases=tuple(raw.get("aliases", ())), hf_repo=raw.get("hf_repo", ""),
                        config_file=raw["config"], family=raw.get("family", ""),
                        release_year=int(raw.get("release_year", 0)),
                        stated_params=float(raw.get("stated_params", 0)),
                        stated_params_source=raw.get("stated_params_source", ""), source=raw["source"])


@cache
def _catalog_names() -> dict[str, CatalogModel]:
    names: dict[str, CatalogModel] = {}
    for entry in model_catalog():
        for name in (entry.key, entry.hf_repo, *entry.aliases):
            if name:
                names[_normalise(name)] = entry
    return names


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def catalog_config(entry: CatalogModel) -> dict[str, Any]:
    """The bundled config.json of a catalog model."""
    text = resources.files("suanli.catalog").joinpath("models", entry.config_file).read_text(encoding="utf-8")
    config: dict[str, Any] = json.loads(text)
    return config


def find_catalog_model(name: str) -> CatalogModel | None:
    """The catalog entry for a name or alias, or None."""
    return _catalog_names().get(_normalise(name))


def load_model(name: str, *, as_family: str | None = None) -> ModelSpec:
    """The ModelSpec for MODEL (see the module docstring for what MODEL may be); ``as_family`` reads its
    config.json with that family's adapter, marked approximate (``--as``)."""
    return resolve_model(name, as_family=as_family).spec


def resolve_model(name: str, *, as_family: str | None = None) -> ResolvedModel:
    """Resolve MODEL, keeping where it came from and any stored-weight facts; ``as_family`` as in ``load_model``."""
    if not name or not name.strip():
        raise UnknownModel("no model given; name a catalog model (see `suanli models`) or a config.json path",
                           key="error.no_model")
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return _from_gguf(path, as_family)
        return _from_config_file(path, as_family=as_family)
    if path.is_dir():
        return _from_directory(path, as_family)
    entry = find_catalog_model(name)
    if entry is not None:
        spec = spec_from_config(catalog_config(entry), name=entry.key, source=entry.source, as_family=as_family)
        return ResolvedModel(spec=spec, origin="catalog", catalog=entry)
    if _looks_like_repo_id(name):
        return _from_hub(name.strip(), as_family)
    raise UnknownModel(
        f"unknown model '{name}'{suggest(name, _catalog_names())}; "
        "run `suanli models` for the catalog, or pass a config.json path, a model directory or an org/name repo id",
        key="error.unknown_model", fields={"name": name, "suggestions": close_matches(name, _catalog_names())},
    )


def read_config_json(path: Path) -> dict[str, Any]:
    """Parse a config.json, with one-line errors for unreadable or malformed files."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", key="error.config_unreadable",
                          fields={"path": path, "reason": exc}) from exc
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                          key="error.config_not_json",
                          fields={"path": path, "line": exc.lineno, "column": exc.colno, "reason": exc.msg}) from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must hold a JSON object, got {type(config).__name__}", key="error.config_not_object",
                          fields={"path": path, "kind": type(config).__name__})
    return config


def _from_config_file(path: Path, origin: str = "config", name: str = "", *,
                      as_family: str | None = None) -> ResolvedModel:
    name = name or (path.parent.name if path.name == "config.json" else path.stem)
    spec = spec_from_config(read_config_json(path), name=name or str(path), source=str(path), as_family=as_family)
    return ResolvedModel(spec=spec, origin=origin)


def _from_directory(path: Path, as_family: str | None) -> ResolvedModel:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ConfigError(f"{path} has no config.json; pass the model directory that holds it",
                          key="error.no_config_json",
                          fields={"path": path})
    resolved = _from_config_file(config_path, origin="directory", as_family=as_family)
    if any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").is_file():
        from suanli.spec.weights_file import read_safetensors_dir

        resolved = replace(resolved, stored=read_safetensors_dir(path))
    return resolved


def _from_gguf(path: Path, as_family: str | None) -> ResolvedModel:
    from suanli.spec.gguf import gguf_to_hf_config, read_gguf

    gguf = read_gguf(path)
    spec = spec_from_config(gguf_to_hf_config(gguf), name=path.stem, source=str(path), as_family=as_family)
    return ResolvedModel(spec=spec, origin="gguf", gguf=gguf)


def _looks_like_repo_id(name: str) -> bool:
    parts = name.strip().split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def _from_hub(repo_id: str, as_family: str | None) -> ResolvedModel:
    cached = _hf_cache_config(repo_id)
    if cached is not None:
        return _from_config_file(cached, origin="hf-cache", name=repo_id, as_family=as_family)  # not the hash
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise Unavailable(
            f"'{repo_id}' is not in the catalog or the local Hugging Face cache; to fetch its config.json, "
            "install the hub client (pip install huggingface_hub, a dependency of suanli) or pass a local config.json",
        key="error.hub_client", fields={"repo": repo_id},
        ) from exc
    _require_hub_reachable(repo_id)
    try:
        downloaded = Path(hf_hub_download(repo_id, "config.json", etag_timeout=HUB_TIMEOUT_S))
    except Exception as exc:  # the hub client raises many types: offline, gated, missing repo
        raise Unavailable(
            f"could not fetch config.json of '{repo_id}' from the Hugging Face Hub ({type(exc).__name__}); "
            "check the repo id and your network, or download config.json and pass its path",
            key="error.hub_fetch",
            fields={"repo": repo_id, "kind": type(exc).__name__},
        ) from exc
    return _from_config_file(downloaded, origin="hub", name=repo_id, as_family=as_family)


# How long to wait for the Hub before saying it cannot be reached: offline, the client would retry for ~24 s.
HUB_TIMEOUT_S = 0.8


def _require_hub_reachable(repo_id: str) -> None:
    """Fail at once, in one line, when the Hub cannot be reached (``HF_HUB_OFFLINE``, no DNS, no route), instead
    of the hub client's retries. The probe resolves and connects to the endpoint's host within ``HUB_TIMEOUT_S``;
    DNS lookups ignore socket timeouts, so it runs in a daemon thread that is abandoned when late."""
    fix = f"download {repo_id}'s config.json and pass its path, or use a bundled model (`suanli models`)"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise Unavailable(f"'{repo_id}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; {fix}",
                          key="error.hub_offline", fields={"repo": repo_id})
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlsplit(endpoint)
    host, port = parsed.hostname or "huggingface.co", parsed.port or (80 if parsed.scheme == "http" else 443)
    reached: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=HUB_TIMEOUT_S).close()
            reached.append(True)
        except OSError:
            pass

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(HUB_TIMEOUT_S)
    if not reached:
        raise Unavailable(f"'{repo_id}' is not in the catalog or the local Hugging Face cache, and {host} cannot be "
                          f"reached (offline?); {fix}", key="error.hub_unreachable",
                          fields={"repo": repo_id, "host": host})


def _hf_cache_config(repo_id: str) -> Path | None:
    """config.json of ``repo_id`` in the local HF cache (HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub)."""
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(Path.home(), ".cache", "huggingface")), "hub")
    snapshots = Path(hub) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    main_ref = snapshots.parent / "refs" / "main"
    if main_ref.is_file():
        pinned = snapshots / main_ref.read_text(encoding="utf-8").strip() / "config.json"
        if pinned.is_file():
            return pinned
    candidates = sorted(snapshots.glob("*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return candidates[0] if candidates else None
