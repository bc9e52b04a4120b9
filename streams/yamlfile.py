"""Reading a hand-written YAML file into a pydantic model, with errors that name the line.

Used for the rules file and the import mappings: both are written by people, so every
problem is reported as `file line N: field.path: what is wrong`, all at once. The loader
is a SafeLoader (nothing in the file is ever run); yes/no/on/off and dates stay text, and a
key given twice is refused.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

#: The error type of messages worded by our own validators (see `custom_error`).
CUSTOM = "worded"


def custom_error(detail: str, at: str | None = None) -> PydanticCustomError:
    """A validation error with our own wording; `at` narrows it to a sub-field (for its line)."""
    return PydanticCustomError(CUSTOM, "{detail}", {"detail": detail} | ({"at": at} if at else {}))


def shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list | dict):
        return f"{'a list' if isinstance(value, list) else 'a mapping'} {list(value)!r}"[:80]
    for kind, name in ((bool, "true/false"), (str, "text"), (int | float, "number")):
        if isinstance(value, kind):
            return f"{name} {value!r}"
    return f"{type(value).__name__} {value!r}"


class _LineDict(dict):
    """A YAML mapping that remembers its own line and the line of each key."""

    line = 1

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


class _LineList(list):
    line = 1

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []


class _LineLoader(yaml.SafeLoader):
    """SafeLoader recording line numbers; yes/no/on/off and dates stay text; duplicate keys refused."""


_BOOL, _TIMESTAMP = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(_BOOL, re.compile("^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[_LineDict]:
    data = _LineDict()
    data.line = node.start_mark.line + 1
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            seen = key in data
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a key must be text", key_node.start_mark) from None
        if seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {data.lines[key]})", key_node.start_mark
            )
        data[key] = loader.construct_object(value_node, deep=True)
        data.lines[key] = key_node.start_mark.line + 1


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> Iterator[_LineList]:
    data = _LineList()
    data.line = node.start_mark.line + 1
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.lines.append(item.start_mark.line + 1)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def _line_of(data: Any, loc: tuple) -> int:
    """The line of the deepest node of `loc` that the file has (a missing key: its parent's line)."""
    line, node = getattr(data, "line", 1), data
    for part in loc:
        if isinstance(node, _LineDict):
            key = next((k for k in node if str(k) == str(part)), None)
            if key is None:
                break
            line, node = node.lines[key], node[key]
        elif isinstance(node, _LineList) and isinstance(part, int) and 0 <= part < len(node):
            line, node = node.lines[part], node[part]
        else:
            break
    return line


def _fields_at(model: Any, loc: tuple) -> list[str]:
    """The field names the model allows at `loc` (for 'unknown field' hints); list indexes and the
    keys of `dict[str, Model]` fields are skipped."""
    skip_key = False
    for part in loc:
        if isinstance(part, int) or skip_key:
            skip_key = False
            continue
        info = model.model_fields.get(str(part))
        if info is None:
            info = next((f for f in model.model_fields.values() if f.alias == str(part)), None)
        if info is None:
            return []
        ann = info.annotation
        skip_key = getattr(ann, "__origin__", None) is dict
        candidates = [ann, *get_args(ann)]
        for arg in list(candidates):
            candidates.extend(get_args(arg))
        model = next((a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _explain(model: type[BaseModel], error: ErrorDetails, loc: tuple) -> str:
    kind = error["type"]
    if kind == CUSTOM:
        return error["ctx"]["detail"]
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown field ({hint}allowed here: {', '.join(allowed)})"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping of fields (key: value), got {shown(error['input'])}"
    if kind == "value_error":  # our validators' own words say it all
        return error["msg"].removeprefix("Value error, ")
    return f"{error['msg'].removeprefix('Value error, ')}, got {shown(error['input'])}"


def _is_branch(part) -> bool:
    """A union-branch name pydantic puts in an error's location (`float`, `SignalRef`, `function-after[…]`).

    A key in upper case only (a currency code such as `USD`) is the file's, not a branch's."""
    text = str(part)
    return not isinstance(part, int) and (
        (text[:1].isupper() and not text.isupper()) or "[" in text or text in ("float", "bool", "int", "str")
    )


def _where(loc: tuple) -> str:
    """`lifecycle.2.when` style, without pydantic's union-branch names."""
    return ".".join(str(p) for p in loc if not _is_branch(p)) or "(top level)"


def validated_yaml(
    path: str | Path, model: type[BaseModel], error: type[Exception], top_hint: str = "", context: dict | None = None
):
    """Read a YAML file and validate it as `model`; any problem raises `error` naming each line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the file: {exc}") from None
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        hint = ' (quote strptime formats: "%Y-%m-%d")' if "'%'" in str(exc.problem) else ""
        raise error(
            f"{path.name} line {mark.line + 1 if mark else 1}: not valid YAML: {exc.problem or exc.context}{hint}"
        ) from None
    except yaml.YAMLError as exc:
        raise error(f"{path.name}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path.name} line 1: expected a mapping of fields{top_hint}, got {shown(data)}")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        problems, seen = [], set()
        for item in exc.errors():
            at = (item.get("ctx") or {}).get("at")
            loc = tuple(item["loc"]) + (tuple(int(p) if p.isdigit() else p for p in at.split(".")) if at else ())
            clean = tuple(p for p in loc if not _is_branch(p))
            if clean in seen and any(_is_branch(p) for p in loc):
                continue  # one message per place: the first union branch's says enough
            seen.add(clean)
            problems.append((_line_of(data, clean), f"{_where(loc)}: {_explain(model, item, clean)}"))
        unique = sorted(set(problems))
        raise error("\n".join(f"{path.name} line {line}: {what}" for line, what in unique)) from None
