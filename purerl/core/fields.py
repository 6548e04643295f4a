"""The fields of a config dataclass as a user reads them: name, type, default and the source the
default comes from (the inline comment beside the field, where the house style puts the paper
section, the official code or the reason for a deviation). ``purerl agents NAME`` prints them."""

from __future__ import annotations

import dataclasses
import inspect
import io
import tokenize
import typing
from typing import Any, NamedTuple


class Field(NamedTuple):
    name: str
    type: str
    default: str  # repr of the default; "(required)" when there is none
    source: str  # the field's inline comment, "" when it has none


def _inline_comments(cls: type) -> dict[str, str]:
    """``{field: comment}`` from the class body's ``name: type = value  # comment`` lines."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments: dict[str, str] = {}
    lines = source.splitlines()
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        line = lines[tok.start[0] - 1]
        code = line[: tok.start[1]].strip()
        if ":" in code and not code.startswith(("def ", "class ", "@", "#")):
            name = code.split(":", 1)[0].strip()
            if name.isidentifier():
                comments.setdefault(name, tok.string.lstrip("#").strip())
    return comments


def _type_name(t: Any) -> str:
    if isinstance(t, str):  # modules with ``from __future__ import annotations``
        return t
    if isinstance(t, type) and not typing.get_args(t):
        return t.__name__
    return str(t).replace("typing.", "")


def config_fields(cls: type) -> list[Field]:
    """The init fields of dataclass ``cls`` in order, with defaults and inline-comment sources."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's comment beats its base's
        if dataclasses.is_dataclass(klass):
            comments.update(_inline_comments(klass))
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        out.append(Field(f.name, _type_name(f.type), default, comments.get(f.name, "")))
    return out


def format_fields(fields: list[Field]) -> str:
    """An aligned plain-text table: ``name  type  default  source``."""
    rows = [("field", "type", "default", "source")] + [tuple(f) for f in fields]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
        for r in rows
    ).rstrip()
