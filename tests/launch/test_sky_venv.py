"""The SkyPilot tests, run where SkyPilot is installed.

skypilot 0.14.1 pins uvicorn<0.36 and click<8.2, which the project's own constraints (uvicorn 0.54,
click 8.5 for huggingface-hub) cannot hold, so it never shares the test environment. This test gives it
its own: a venv layered on this one (`--system-site-packages`: Stratos, torch, ... as installed here) with
`pip install skypilot==0.14.1`, then runs tests/launch/test_sky.py there, expecting every test to pass and
none to skip. It skips, with the reason, only when pip cannot install skypilot (no package index).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def sky_python(tmp_path_factory) -> str:
    where = tmp_path_factory.mktemp("skyvenv")
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(where)
    py = str(where / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "skypilot==0.14.1"],
                       capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        pytest.skip(f"skypilot cannot be installed here (pip exit {r.returncode}): {r.stderr.strip()[-300:]}")
    return py


def test_skypilot_tasks_validate_in_an_environment_that_has_it(sky_python, tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}  # SkyPilot's state under a private HOME
    r = subprocess.run([sky_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                        str(ROOT / "tests" / "launch" / "test_sky.py")], cwd=ROOT, capture_output=True, text=True,
                       timeout=900, env=env, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert " passed" in out and "skipped" not in out, out[-2000:]
