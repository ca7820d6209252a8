"""The guide's "Serve your student" page (docs/howto/serving.md, linked from the README) runs as written: its
install extra holds the server's imports, its serve command starts the real server (on a tiny export), and
its `openai` snippet gets a chat completion back. (tests/test_docs.py runs the page too, on the quick
start's export; this test needs no earlier page and checks the key is enforced.)"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


PAGE = ROOT / "docs" / "howto" / "serving.md"


def section() -> str:
    text = PAGE.read_text()
    assert text.startswith("# Serve your student\n")
    assert "docs/howto/serving.md" in (ROOT / "README.md").read_text()  # the README links the page
    return text


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section(), flags=re.S)


def serve_command() -> tuple[dict[str, str], list[str]]:
    """(env assignments, argv) of the page's `python -m stratos.serve` line."""
    [line] = [ln for b in blocks("bash") for ln in b.splitlines() if "python -m stratos.serve" in ln]
    words = shlex.split(line)
    env = dict(w.split("=", 1) for w in words[: words.index("python")])
    return env, words[words.index("python") + 3:]  # after `python -m stratos.serve`


def test_install_line_names_an_extra_with_everything_the_server_imports():
    [install] = [ln for b in blocks("bash") for ln in b.splitlines() if ln.startswith("pip install")]
    assert install == "pip install -c constraints.txt -e '.[serve]'"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=\[ ]", r, maxsplit=1)[0].replace("-", "_").lower() for r in extras["serve"]}
    assert {"fastapi", "uvicorn", "prometheus_client", "openai"} <= names


def test_readme_client_snippet_against_the_readme_server(tiny_export):
    env, argv = serve_command()
    assert "STRATOS_API_KEY" in env  # the page shows the key coming from the environment
    model_root = str(Path(tiny_export["onnx"]).parent)  # an export stage directory: onnx/ and hf/
    flags = dict(zip(argv[::2], argv[1::2]))  # every serve flag takes a value
    assert list(flags) == argv[::2] and all(f.startswith("--") for f in flags) and "--model" in flags
    args = [w for f, v in {**flags, "--model": model_root, "--port": "0"}.items() for w in (f, v)]  # any free port
    from stratos.serve.__main__ import parse_args

    parse_args(args)  # every flag on the page is a real one
    proc = subprocess.Popen([sys.executable, "-m", "stratos.serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, **env, "TOKENIZERS_PARALLELISM": "false"})
    try:
        line = proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        assert m, f"server did not start: {line}{proc.stderr.read() if proc.poll() is not None else ''}"
        [snippet] = [b for b in blocks("python") if "from openai import OpenAI" in b]
        out = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120, cwd=ROOT,
                             env={**os.environ, "STRATOS_BASE_URL": m.group(1),
                                  "STRATOS_API_KEY": env["STRATOS_API_KEY"]})
        assert out.returncode == 0, out.stderr
        assert re.search(r"completion_tokens=[1-9]", out.stdout), out.stdout
        wrong = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120,
                               env={**os.environ, "STRATOS_BASE_URL": m.group(1), "STRATOS_API_KEY": "wrong"})
        assert wrong.returncode != 0 and "401" in wrong.stderr  # the key the page sets is really checked
    finally:
        proc.terminate()
        proc.wait(timeout=60)
