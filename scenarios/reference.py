"""The scenario reference: every table and field of a scenario file, generated from the config models.

`python -m scenarios.reference > docs/scenario_reference.md` writes it; tests/test_kinds.py fails when the committed
file is not what the models say. A field's meaning is its description, else the comment on its line, else the
comment block right above it in the model's source (the models keep their explanations as comments).
"""

from __future__ import annotations

import importlib
import inspect
import io
import tokenize
import types
import typing
from functools import cache

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from agent_node.roles import load_role

from .config import MqttConfig, RunConfig, SecurityConfig
from .kinds import KINDS, world_kind


@cache
def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """field name -> the comment on its line, or the comment lines right above it, in model's class body."""
    out: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        block: list[str] = []
        line_of: dict[int, str] = {}
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                line_of[tok.start[0]] = tok.string.lstrip("#").strip()
        for number, line in enumerate(source.splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("#"):
                block.append(line_of.get(number, ""))
                continue
            name = stripped.split(":", 1)[0].strip()
            if ":" in stripped and name.isidentifier() and name in model.model_fields and line.startswith("    "):
                own = line_of.get(number, "")
                text = "" if own.startswith(("noqa", "type:")) else own  # a pragma, not a meaning
                text = text or " ".join(block)
                if text:
                    out[name] = text
            block = []
    return out


def type_name(annotation) -> str:
    """A short, readable spelling of a field's type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " / ".join(f"`{a!r}`" if isinstance(a, str) else f"`{a}`" for a in args).replace("'", '"')
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args).replace("NoneType", "none")
    if origin in (list, tuple, dict, set):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args if a is not Ellipsis)}]"
    if isinstance(annotation, type):
        return "none" if annotation is type(None) else annotation.__name__
    return str(annotation).replace("typing.", "")


def default_text(field) -> str:
    """The field's default as it would be written in TOML (or a note when it is computed)."""
    if field.default is PydanticUndefined:
        return "computed" if field.default_factory is not None else "required"
    value = field.default
    if isinstance(value, BaseModel):
        return "table"
    if isinstance(value, str):
        return f'`"{value}"`'
    if value is None:
        return "unset"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def constraints(field) -> str:
    """Bounds of a numeric field (ge, gt, le, lt) as text."""
    out = []
    for meta in field.metadata:
        for key, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(meta, key, None) is not None:
                out.append(f"{sign} {getattr(meta, key)}")
    return ", ".join(out)


def sub_model(annotation) -> type[BaseModel] | None:
    """The model a field holds a table of, if any (through Annotated and Optional)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = sub_model(arg)
        if found is not None:
            return found
    return None


def table(model: type[BaseModel], name: str, skip: tuple[str, ...] = (), kind: str = "") -> list[str]:
    """The markdown of one table and, after it, of every table nested in it."""
    doc = " ".join((model.__doc__ or "").split())
    heading = f"### `[{name}]`" + (f" ({kind})" if kind else "")
    lines = [heading, "", doc, "", "| field | type | default | meaning |", "|---|---|---|---|"]
    nested = []
    comments = field_comments(model)
    for key, field in model.model_fields.items():
        if key in skip:
            continue
        inner = sub_model(field.annotation)
        if inner is not None and inner is not model:
            nested.append((key, inner))
        meaning = field.description or comments.get(key, "")
        bounds = constraints(field)
        meaning = f"{meaning} ({bounds})" if bounds and meaning else meaning or (f"({bounds})" if bounds else "")
        spelled = f"table `[{name}.{key}]`" if inner is not None else type_name(field.annotation)
        lines.append(f"| `{key}` | {spelled} | {default_text(field)} | {meaning.replace('|', '/')} |")
    lines.append("")
    for key, inner in nested:
        lines += table(inner, f"{name}.{key}", kind=kind)
    return lines


def reference() -> str:
    """The whole reference, as markdown."""
    from netsim.config import NetsimConfig

    out = [
        "# Scenario reference",
        "",
        "Generated from the config models by `python -m scenarios.reference > docs/scenario_reference.md`; do not",
        "edit by hand. Every field can be set in the scenario file or with `--set table.field=value`; unknown",
        "fields are errors. [Scenario files](scenarios.md) explains the files and the presets.",
        "",
        "## Tables of every scenario",
        "",
    ]
    out += table(RunConfig, "run") + table(NetsimConfig, "netsim") + table(SecurityConfig, "security")
    out += table(MqttConfig, "mqtt")
    for name in KINDS:
        kind = world_kind(name)
        about = inspect.getdoc(importlib.import_module(KINDS[name].split(":")[0])) or ""
        out += [f"## World kind `{name}`", "", about, ""]
        out += table(kind.world, "world", kind=name)
        if kind.algo is not None:
            out += table(kind.algo, "algo", skip=("name",), kind=name)
        else:
            out += [
                "Its agents take their settings from `[role]`: `name` picks a registered role (agent_node/roles/) and",
                "the rest are that role's own settings. The default, the beacon role's:",
                "",
            ]
            out += table(load_role("beacon").Settings, "role", kind=f'{name}, name = "beacon"')
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(reference(), end="")
