"""A built wheel carries its configuration: a non-editable install runs from any directory.

Builds the wheel with pip, installs it (no deps: they come from this environment through
`--system-site-packages`) into a fresh virtual environment, then runs the plan stage from an
unrelated directory. The run must import Stratos from the venv, not from this checkout, and
must find conf/ as package data (`pkg://stratos.conf`).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# One xdist worker for the module: its `wheel` fixture is per worker, and pip builds in the source tree (setuptools'
# ROOT/build/bdist.*), so two workers building at once collide there ("File exists: .../stratos-0.1.0.dist-info").
pytestmark = pytest.mark.xdist_group("packaging")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")  # pip's working directory (setuptools still builds under ROOT/build)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(ROOT)], capture_output=True, text=True, cwd=build,
                       env={**os.environ, "PIP_NO_INPUT": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("stratos-*.whl")
    return whl


def test_wheel_ships_every_yaml_in_conf(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in names if n.startswith("stratos/conf/") and n.endswith(".yaml")}
    expected = {f"stratos/conf/{p.relative_to(ROOT / 'conf').as_posix()}" for p in (ROOT / "conf").rglob("*.yaml")
                if p.parent.name != "local"}  # conf/local/*.yaml are a user's own, git-ignored
    assert expected and expected <= shipped, sorted(expected - shipped)[:5]
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_installed_wheel_plans_from_an_unrelated_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([py, "-c", "import stratos, stratos.conf; print(stratos.__file__)"], capture_output=True,
                           text=True, cwd=work, env=env)
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout, where.stdout
    r = subprocess.run([py, "-m", "stratos", "+task=mahjong", "pipeline.stages=[plan]", "paths.output_root=out"],
                       capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "plan:" in r.stdout
    assert list((work / "out").rglob("plan/manifest.json")), "the plan stage wrote no manifest"
