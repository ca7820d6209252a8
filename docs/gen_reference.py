"""Generate the configuration reference (the guide's `reference/config.md`) from the structured configs.

The dataclasses in `stratos/config/` (and ACME's `stratos/acme/config.py`) own every key, type and
default, and the comment next to a field is its documentation. This script reads them with `ast` and
`tokenize` (trailing comments are not visible to `inspect`), follows the root config's fields into
each group, and writes one table per dataclass: key, type, default, description. Enum-typed keys list
their allowed values from `stratos/config/choices.py`; each group lists its YAML options in `conf/`
with the schema each one extends; and a column shows the value `python -m stratos +task=mahjong`
composes when it differs from the dataclass default (Hydra's own composition, so what a YAML option
sets is shown as it really is).

Run at every `mkdocs build` by the hook in mkdocs.yml (`on_files` below adds the page in memory, so
no generated copy is committed and none can go stale); `python docs/gen_reference.py` prints it.
"""

from __future__ import annotations

import ast
import io
import json
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "stratos" / "config"
ACME_CONFIG = ROOT / "stratos" / "acme" / "config.py"
CONF = ROOT / "conf"
PAGE = "reference/config.md"
REQUIRED = "(set by the option)"  # a MISSING field: each YAML option of the group sets it


@dataclass
class Field:
    name: str
    type: str
    default: str
    doc: str
    nested: str | None = None  # the dataclass this field holds (rendered as its own table)


@dataclass
class Schema:
    name: str
    module: str
    doc: str
    bases: list[str]
    fields: list[Field] = field(default_factory=list)


@dataclass
class Enum:
    name: str
    members: list[tuple[str, str]]  # (value, comment)


# ---------------------------------------------------------------- reading the source
def _comments(source: str) -> tuple[dict[int, str], set[int]]:
    """Line -> comment text, and the lines that hold only a comment."""
    comments, alone = {}, set()
    code_lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.add(tok.start[0])
    alone = {ln for ln in comments if ln not in code_lines}
    return comments, alone


def _field_doc(node: ast.AnnAssign, comments: dict[int, str], alone: set[int]) -> str:
    """The comment lines right above a field, then its trailing comment(s)."""
    above, ln = [], node.lineno - 1
    while ln in alone:
        above.insert(0, comments[ln])
        ln -= 1
    after = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments and n not in alone]
    return " ".join(above + after).strip()


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.LShift):  # 1 << 20
            return _literal(node.left) << _literal(node.right)
        raise


def _show(value: Any) -> str:
    """A value as it would be written on the command line / in YAML (JSON flow style)."""
    return json.dumps(value, ensure_ascii=False)


def _default(node: ast.expr | None, schemas: set[str]) -> tuple[str, str | None]:
    """(default as text, nested dataclass name) of a field's right-hand side."""
    if node is None:
        return REQUIRED, None
    if isinstance(node, ast.Name) and node.id == "MISSING":
        return REQUIRED, None
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "field":
        kw = {k.arg: k.value for k in node.keywords}
        factory = kw.get("default_factory")
        if isinstance(factory, ast.Name) and factory.id in schemas:
            return "", factory.id
        if isinstance(factory, ast.Lambda):
            body = factory.body
            if isinstance(body, ast.List) and body.elts and isinstance(body.elts[0], ast.Call):
                return ast.unparse(body), None  # e.g. [DeviceClassConfig()]
            return _show(_literal(body)), None
        if isinstance(factory, ast.Name):
            return _show({"list": [], "dict": {}}.get(factory.id, factory.id)), None
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):  # Enum.member
        return _show(node.attr), None
    try:
        return _show(_literal(node)), None
    except ValueError:
        return ast.unparse(node), None


def _is_dataclass(node: ast.ClassDef) -> bool:
    return any((getattr(d, "id", None) or getattr(getattr(d, "func", None), "id", None)) == "dataclass"
               for d in node.decorator_list)


def dataclass_names(paths: list[Path]) -> set[str]:
    return {n.name for p in paths for n in ast.parse(p.read_text()).body
            if isinstance(n, ast.ClassDef) and _is_dataclass(n)}


def read_module(path: Path, names: set[str], schemas: dict[str, Schema], enums: dict[str, Enum]) -> None:
    """Add the module's dataclasses (`names`: every dataclass, for nested fields) and StrEnums."""
    source = path.read_text()
    tree = ast.parse(source)
    comments, alone = _comments(source)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    module = path.relative_to(ROOT).as_posix()
    for cls in classes:
        bases = [ast.unparse(b) for b in cls.bases]
        if "StrEnum" in bases:
            members = [(_literal(s.value), comments.get(s.lineno, "")) for s in cls.body
                       if isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant)]
            enums[cls.name] = Enum(cls.name, members)
            continue
        if not _is_dataclass(cls):
            continue
        schema = Schema(cls.name, module, ast.get_docstring(cls) or "", bases)
        for stmt in cls.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                default, nested = _default(stmt.value, names)
                schema.fields.append(Field(stmt.target.id, ast.unparse(stmt.annotation), default,
                                           _field_doc(stmt, comments, alone), nested))
        schemas[cls.name] = schema


def stored_schemas(path: Path) -> dict[str, tuple[str, str]]:
    """`base_<group>[_<kind>]` -> (group, dataclass), from the `cs.store(...)` calls of register_configs."""
    out = {}
    for call in ast.walk(ast.parse(path.read_text())):
        if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "store":
            kw = {k.arg: k.value for k in call.keywords}
            if "name" in kw and isinstance(kw.get("node"), ast.Name):
                group = kw["group"].value if "group" in kw else ""
                out[kw["name"].value] = (group, kw["node"].id)
    return out


# ---------------------------------------------------------------- the composed default run
def composed(config_name: str, overrides: list[str]):
    """The config `python -m stratos <overrides>` (or ACME's root) composes, unresolved; None without Hydra."""
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra
    except ImportError:
        return None
    import sys

    sys.path.insert(0, str(ROOT))
    try:
        from stratos.config import register_configs
        from stratos.acme.config import register_acme_configs

        register_configs()
        register_acme_configs()
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name, overrides=overrides, return_hydra_config=True)
    finally:
        sys.path.remove(str(ROOT))


def _select(cfg, key: str):
    """The value at a dotted key as written (interpolations unresolved), or "<absent>"."""
    from omegaconf import OmegaConf

    if cfg is None:
        return None
    node = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True, throw_on_missing=False)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "<absent>"
        node = node[part]
    return node


# ---------------------------------------------------------------- rendering
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`{_cell(text)}`" if text else ""


def _type(f: Field, enums: dict[str, Enum]) -> str:
    return _code(f.type)


def _choices(f: Field, enums: dict[str, Enum]) -> str:
    name = f.type.replace("Optional[", "").rstrip("]")
    if name not in enums:
        return ""
    items = [f"`{v}`" + (f" ({c})" if c else "") for v, c in enums[name].members]
    return " One of: " + ", ".join(items) + "."


def _run_value(cfg, key: str, f: Field) -> str:
    value = _select(cfg, key)
    if cfg is None or (isinstance(value, str) and value == "<absent>"):
        return ""
    shown = _show(value)
    if isinstance(value, list) and len(shown) > 120:  # e.g. the bundled catalog's rows
        return f"{len(value)} entries (set in the YAML)"
    return "" if shown == f.default else _code(shown)


def table(schema: Schema, prefix: str, schemas: dict[str, Schema], enums: dict[str, Enum], cfg,
          out: list[str], only: set[str] | None = None, level: int = 3) -> None:
    """One table for `schema` at `prefix`, then one per nested dataclass field."""
    rows, nested = [], []
    for f in schema.fields:
        if only is not None and f.name not in only:
            continue
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.nested:
            nested.append((key, schemas[f.nested]))
            rows.append(f"| `{key}` | `{f.nested}` | see [`{key}`](#{_anchor(key)}) | {_cell(f.doc)} | |")
            continue
        rows.append(f"| `{key}` | {_type(f, enums)} | {_code(f.default)} | {_cell(f.doc)}{_choices(f, enums)} "
                    f"| {_run_value(cfg, key, f)} |")
    if rows:
        out += ["| key | type | default | description | default run |", "|---|---|---|---|---|", *rows, ""]
    for key, sub in nested:
        out += [f"{'#' * level} `{key}` {{#{_anchor(key)}}}", ""]
        out += [f"`{sub.name}` ({sub.module}). {_cell(sub.doc)}".rstrip(), ""]
        table(sub, key, schemas, enums, cfg, out, level=min(level + 1, 6))


def _anchor(key: str) -> str:
    return "key-" + key.replace(".", "-").replace("_", "-")


def _options(group: str, stored: dict[str, tuple[str, str]]) -> list[tuple[str, str]]:
    """(option, schema) of every YAML option in conf/<group>/: the `base_*` it lists first in its defaults."""
    import yaml

    out = []
    for path in sorted((CONF / group).glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        base = next((d for d in data.get("defaults", []) if isinstance(d, str) and d.startswith("base_")), "")
        out.append((path.stem, stored.get(base, ("", ""))[1]))
    return out


def _subclasses(name: str, schemas: dict[str, Schema]) -> list[Schema]:
    return [s for s in schemas.values() if name in s.bases]


def render() -> str:
    schemas: dict[str, Schema] = {}
    enums: dict[str, Enum] = {}
    paths = [*sorted(CONFIG_DIR.glob("*.py")), ACME_CONFIG]
    names = dataclass_names(paths)
    for path in paths:
        read_module(path, names, schemas, enums)
    stored = stored_schemas(CONFIG_DIR / "__init__.py")
    cfg = composed("config", ["+task=mahjong"])
    acme_cfg = composed("acme", [])

    out = ["# Configuration reference", "",
           "Every key of `python -m stratos` and `python -m stratos.acme`, generated at each docs build from the "
           "structured-config dataclasses in `stratos/config/` (and `stratos/acme/config.py`): the dataclass "
           "owns the type, the default and, in the comment next to the field, the description. "
           "**default run** shows what `python -m stratos +task=mahjong` composes where that differs "
           "from the dataclass default (a YAML option of the group, or `conf/config.yaml`, sets it); "
           "the plan may still decide some of them (see [the plan](../concepts/plan.md)). "
           f"{REQUIRED} marks a field each YAML option of the group must set.", "",
           "Set any key on the command line (`trainer.max_steps=800`), choose a group's option by name "
           "(`student=mini_llama`), and add the task with `+task=NAME`.", ""]
    root = schemas["StratosConfig"]
    simple = {f.name for f in root.fields if f.nested is None and f.default != REQUIRED and f.name != "task"}
    out += ["## Top-level keys", ""]
    table(root, "", schemas, enums, cfg, out, only=simple)
    for f in root.fields:
        if f.name in simple:
            continue
        group = f.name
        base = schemas.get(f.type) if f.type in schemas else None
        if group == "task":
            base = schemas["TaskConfig"]
        out += [f"## `{group}` {{#{_anchor(group)}}}", ""]
        out += [f"`{base.name}` ({base.module}). {_cell(base.doc)}".rstrip(), ""]
        options = _options(group, stored) if (CONF / group).is_dir() else []
        if options:
            listed = ", ".join(f"`{group}={o}`" + (f" ({s})" if s and s != base.name else "") for o, s in options)
            add = "+" if group == "task" else ""
            out += [f"Options (`conf/{group}/`): {listed.replace(f'`{group}=', f'`{add}{group}=')}.", ""]
        table(base, group, schemas, enums, cfg, out)
        for sub in _subclasses(base.name, schemas):
            own = {f.name for f in sub.fields}
            out += [f"### `{sub.name}` {{#{_anchor(group + '-' + sub.name)}}}", "",
                    f"Extends `{base.name}` ({sub.module}). {_cell(sub.doc)}".rstrip(),
                    "Keys it adds or whose default it changes:", ""]
            sub_cfg = cfg if cfg is not None and _schema_of(cfg, group, options, sub.name) else None
            table(sub, group, schemas, enums, sub_cfg, out, only=own)

    out += ["## Groups without a schema", "",
            "These groups are Hydra overlays (`@package _global_` or Hydra's own launcher settings); they set keys "
            "documented above.", "",
            "| group | options |", "|---|---|"]
    for group in ("experiment", "debug", "hydra/launcher"):
        opts = sorted(p.relative_to(CONF / group).with_suffix("").as_posix() for p in (CONF / group).rglob("*.yaml"))
        out.append(f"| `{group}` | {', '.join(f'`{o}`' for o in opts)} |")
    out += ["| `local` | your own `conf/local/default.yaml` (git-ignored), merged last when present |", ""]

    app = schemas["AcmeAppConfig"]
    out += ["## ACME application (`python -m stratos.acme`) {#acme-app}", "",
            f"`{app.name}` ({app.module}), root config `conf/acme.yaml`. {_cell(app.doc)}".rstrip(), ""]
    table(app, "", schemas, enums, acme_cfg, out)
    device = schemas["DeviceClassConfig"]
    out += [f"`device_classes` is a list of `{device.name}`: {_cell(device.doc)} Set one entry's key as "
            "`device_classes.0.max_size_mb=0.3`.", ""]
    table(device, "device_classes[]", schemas, enums, None, out)
    return "\n".join(out) + "\n"


def _schema_of(cfg, group: str, options: list[tuple[str, str]], schema: str) -> bool:
    """Whether the composed run's option for `group` uses `schema` (else its values would mislead)."""
    from omegaconf import OmegaConf

    chosen = OmegaConf.select(cfg, f"hydra.runtime.choices.{group}", default=None)
    return any(o == str(chosen) and s == schema for o, s in options)


# ---------------------------------------------------------------- mkdocs hook
def on_files(files, config):
    """Add the generated page to the build (in memory: nothing is written into docs/)."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    return files


def on_serve(server, config, builder):
    """`mkdocs serve` rebuilds when a schema changes."""
    server.watch(str(CONFIG_DIR))
    server.watch(str(ACME_CONFIG))
    return server


if __name__ == "__main__":
    print(render(), end="")
