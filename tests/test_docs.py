"""The user guide (docs/, mkdocs.yml) builds strictly and every shell and Python snippet in it runs.

Snippets are the fenced ```bash and ```python blocks of the pages, in the order of mkdocs.yml's nav, so a
page may use what an earlier one made (the serving page serves the quick start's export), as a reader
following the guide would. They run in one sandbox: a temporary folder holding links to every top-level
entry of this checkout except `outputs/`, so relative paths (`launchers/...`, `constraints.txt`,
`outputs/...`) mean what they mean at the repository root while every run, plan history and sweep lands
in the sandbox, never in the checkout.

An HTML comment right before a block says how it runs:

    <!-- skip-ci: reason -->         not run (minutes of training, installs into this environment);
                                     listed with its reason, and at most MAX_SKIPPED of them
    <!-- ci: needs slurm -->         run when `sinfo` shows a partition up, else skipped with that reason
    <!-- ci: background "REGEX" -->  a server: started, waited for until its output matches REGEX, left
                                     running for the page's later blocks, then stopped (SIGTERM)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MAX_SKIPPED = 6
SNIPPET_TIMEOUT_S = 600
FENCE = re.compile(r"(?P<marker>(?:<!--[^\n]*-->\n)?)```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S)


@dataclass
class Snippet:
    page: str
    index: int
    lang: str
    code: str
    marker: str  # "" | "skip-ci: ..." | "ci: ..."

    @property
    def id(self) -> str:
        return f"{self.page}:{self.index}"


def nav_pages() -> list[str]:
    """Markdown files in nav order (the generated reference page has no snippets and no file)."""
    def walk(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)

    nav = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)["nav"]
    return [p for p in walk(nav) if (DOCS / p).exists()]


def snippets() -> list[Snippet]:
    out = []
    for page in nav_pages():
        for i, m in enumerate(FENCE.finditer((DOCS / page).read_text())):
            marker = m.group("marker").strip().removeprefix("<!--").removesuffix("-->").strip()
            out.append(Snippet(page, i, m.group("lang"), m.group("code"), marker))
    return out


SNIPPETS = snippets()


def test_every_page_is_in_the_nav_and_has_no_stray_fence_language():
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages == set(nav_pages()), pages ^ set(nav_pages())
    for page in pages:  # a ```sh or ```console block would silently escape the runner
        langs = set(re.findall(r"^```(\w+)", (DOCS / page).read_text(), flags=re.M))
        assert langs <= {"bash", "python", "text", "yaml", "json", "csv"}, (page, langs)


def test_snippets_are_found_and_few_are_skipped():
    skipped = [s for s in SNIPPETS if s.marker.startswith("skip-ci")]
    print(f"\n{len(SNIPPETS)} snippets, {len(SNIPPETS) - len(skipped)} run, {len(skipped)} skipped:")
    for s in skipped:
        print(f"  {s.id}: {s.marker}")
    assert len(SNIPPETS) >= 20
    assert len(skipped) <= MAX_SKIPPED
    assert all(re.fullmatch(r"skip-ci: \S.{8,}", s.marker) for s in skipped), "each skip gives its reason"
    unknown = [s.id for s in SNIPPETS if s.marker and not re.match(r"(skip-ci: |ci: (needs slurm|background \"))",
                                                                     s.marker)]
    assert not unknown, f"unknown snippet markers: {unknown}"


def test_site_builds_strictly_with_the_generated_reference(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                        "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not list(DOCS.rglob("config.md")), "the reference is generated in memory, never committed"
    html = (tmp_path / "site" / "reference" / "config" / "index.html").read_text()
    from stratos.acme.config import AcmeAppConfig
    from stratos.config import StratosConfig, TaskConfig

    keys = []

    def walk(cls, prefix):
        for f in fields(cls):
            key = f"{prefix}{f.name}"
            default = f.default_factory() if callable(f.default_factory) else f.default
            if is_dataclass(default):
                walk(type(default), key + ".")
            else:
                keys.append(key)

    walk(StratosConfig, "")
    walk(TaskConfig, "task.")
    walk(AcmeAppConfig, "")
    for group in ("teacher", "student", "strategy", "deploy", "servers", "logger"):
        from stratos import config as schemas

        node = {"teacher": schemas.TeacherConfig, "student": schemas.StudentConfig,
                "strategy": schemas.StrategyConfig, "deploy": schemas.DeployConfig,
                "servers": schemas.ServersConfig, "logger": schemas.LoggerConfig}[group]
        walk(node, group + ".")
    missing = [k for k in keys if f"<code>{k}</code>" not in html]
    assert not missing, f"keys missing from the generated reference: {missing[:10]}"


def test_catalog_page_lists_every_catalog_field_and_accelerator():
    """docs/howto/catalog.md restates the row fields of stratos/plan/catalog.py's docstring: keep them in step."""
    import stratos.plan.catalog as catalog

    page = (DOCS / "howto" / "catalog.md").read_text()
    fields_ = re.findall(r"^  ([a-z_]+(?:, [a-z_]+)*) +(?:str|int|float|override)", catalog.__doc__, flags=re.M)
    names = [n for group in fields_ for n in group.split(", ")]
    assert len(names) >= 15, names
    assert not [n for n in names if f"`{n}`" not in page]
    assert not [g for g in catalog.GPU_SPECS if g not in page]


# ---------------------------------------------------------------- running the snippets
@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    box = tmp_path_factory.mktemp("guide")
    for entry in ROOT.iterdir():
        if entry.name not in {"outputs", ".git", "site", "multirun"}:
            (box / entry.name).symlink_to(entry)
    (box / "outputs").mkdir()
    servers: dict[str, list[subprocess.Popen]] = {}
    yield box, servers
    for procs in servers.values():
        for p in procs:
            _stop(p)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _slurm_up() -> str | None:
    """None when a Slurm partition is up, else why not."""
    if not shutil.which("sinfo"):
        return "sinfo not found (no Slurm here; CI starts one with bash .ci/slurm.sh up)"
    r = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True)
    return None if "up" in r.stdout.split() else f"no Slurm partition up ({r.stdout.strip() or r.stderr.strip()})"


def _argv(s: Snippet, box: Path) -> list[str]:
    if s.lang == "python":
        path = box / f"snippet_{s.page.replace('/', '_')}_{s.index}.py"
        path.write_text(s.code)
        return [sys.executable, str(path)]
    return ["bash", "-euo", "pipefail", "-c", s.code]


@pytest.mark.slow
@pytest.mark.parametrize("s", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_snippet_runs(s: Snippet, sandbox):
    box, servers = sandbox
    for page in [p for p in servers if p != s.page]:  # a page's servers stop when the next page begins
        for proc in servers.pop(page):
            _stop(proc)
    if s.marker.startswith("skip-ci"):
        pytest.skip(s.marker)
    if s.marker == "ci: needs slurm" and (why := _slurm_up()):
        pytest.skip(why)
    env = {**os.environ, "PYTHONPATH": str(box), "TOKENIZERS_PARALLELISM": "false", "CI": "true"}
    env.pop("STRATOS_API_KEY", None)
    if m := re.fullmatch(r'ci: background "(.+)"', s.marker):
        proc = subprocess.Popen(_argv(s, box), cwd=box, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        servers.setdefault(s.page, []).append(proc)
        seen, t0 = [], time.time()
        while time.time() - t0 < 120:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            if re.search(m.group(1), line):
                return
        pytest.fail(f"{s.id}: never printed {m.group(1)!r}:\n{''.join(seen)[-3000:]}")
    r = subprocess.run(_argv(s, box), cwd=box, env=env, capture_output=True, text=True, timeout=SNIPPET_TIMEOUT_S,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{s.id} failed (exit {r.returncode}):\n{s.code}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
