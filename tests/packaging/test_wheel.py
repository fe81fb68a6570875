"""A built wheel carries everything the program needs: installed alone into a fresh virtual environment (no
source tree on the path, no dependencies), ``suanli --version`` and ``suanli models`` work, which needs the
bundled catalog data (``catalog/*.toml`` and every model config) inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from suanli.spec.resolve import model_catalog

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    isolation = [] if _has_setuptools() else ["--use-pep517"]  # a fresh build env needs the package index
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation,
                    *([] if isolation else ["--no-build-isolation"]), "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (built,) = out.glob("suanli-*.whl")
    return built


def _has_setuptools() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 68


def test_wheel_holds_the_catalog(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("accelerators.toml", "interconnects.toml", "engines.toml", "models.toml"):
        assert f"suanli/catalog/{data}" in names
    for entry in model_catalog():
        assert f"suanli/catalog/models/{entry.config_file}" in names, entry.key


def test_wheel_runs_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    version = subprocess.run([str(bin_dir / "suanli"), "--version"], capture_output=True, text=True, timeout=60,
                             cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("suanli "), version.stderr
    models = subprocess.run([str(bin_dir / "suanli"), "models"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)
    assert models.returncode == 0, models.stderr
    assert all(entry.key in models.stdout for entry in model_catalog())
