"""A griffe extension (loaded by mkdocstrings, see mkdocs.yml) for purerl's docstring markup.

purerl's docstrings are Google style with two reStructuredText habits that Markdown does not know:

* roles, ``:func:`td3.critic_loss```, ``:class:`~purerl.core.types.Algorithm```: each becomes a
  cross-reference to the object's API entry when the target resolves inside purerl (an
  ``<autoref ... optional>`` tag: mkdocs-autorefs turns it into a link, or into plain code when the
  object is not rendered, without a warning), else plain code; ``~`` shows the last component only,
  as in Sphinx;
* a paragraph ending in ``::`` before an indented literal block: the second colon is dropped (the
  block itself is already a Markdown code block);
* grouped arguments, ``a, b: the two endpoints``: rendered as one row. mkdocs.yml turns off griffe's
  own unknown-parameter warning, which reads the group as one unknown name; this extension checks
  each name of every ``Args:`` entry against the signature instead and logs a warning (a strict
  build fails) for a name the function does not have.

The docstring text in the source is unchanged; only what the site renders is rewritten. Static
analysis only: nothing here imports purerl (or JAX).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

logger = griffe.logger

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc|const):`(?P<target>[^`]+)`")
LITERAL_BLOCK = re.compile(r"::[ \t]*\n(?=[ \t]*\n)")


def _walk(obj: griffe.Object, found: dict[str, griffe.Object | griffe.Alias]) -> None:
    for member in obj.members.values():
        if member.path in found:
            continue
        found[member.path] = member
        if not member.is_alias:
            _walk(member, found)


def _canonical(found: dict[str, Any], path: str) -> str | None:
    obj = found.get(path)
    if obj is None:
        return None
    if obj.is_alias:
        try:
            return obj.final_target.path
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
    return path


def _resolve(found: dict[str, Any], root: str, obj: griffe.Object, target: str) -> str | None:
    """The canonical path ``target`` names, seen from ``obj`` (itself, its parents, the root)."""
    scopes = []
    scope: griffe.Object | None = obj
    while scope is not None:
        scopes.append(scope.path)
        scope = scope.parent
    candidates = [target] + [f"{s}.{target}" for s in scopes] + [f"{root}.{target}"]
    for path in candidates:
        canonical = _canonical(found, path)
        if canonical is not None:
            return canonical
    return None


class RstRoles(griffe.Extension):
    """Rewrite reST roles and ``::`` literal-block markers in every purerl docstring."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        found: dict[str, Any] = {pkg.path: pkg}
        _walk(pkg, found)
        for obj in list(found.values()):
            if obj.is_alias or obj.docstring is None:
                continue
            obj.docstring.value = self._rewrite(found, pkg.path, obj, obj.docstring.value)
            if obj.is_function:
                self._check_args(obj)

    @staticmethod
    def _check_args(func: griffe.Function) -> None:
        known = {p.name for p in func.parameters}
        variadic = any(p.kind and p.kind.name.startswith("var_") for p in func.parameters)
        sections = griffe.parse_google(func.docstring, warn_unknown_params=False, warnings=False)
        for section in sections:
            if section.kind is not griffe.DocstringSectionKind.parameters:
                continue
            for param in section.value:
                for name in (n.strip().lstrip("*") for n in param.name.split(",")):
                    if name and name not in known and not variadic:
                        logger.warning(
                            f"{func.relative_filepath}:{func.docstring.lineno}: documented "
                            f"parameter {name!r} is not in the signature of {func.path}"
                        )

    @staticmethod
    def _rewrite(found: dict[str, Any], root: str, obj: griffe.Object, text: str) -> str:
        def role(match: re.Match) -> str:
            target = match.group("target").strip()
            short = target.startswith("~")
            target = target.lstrip("~.")
            if target.endswith("()"):
                target = target[:-2]
            shown = target.rsplit(".", 1)[-1] if short else target
            path = _resolve(found, root, obj, target)
            if path is None:
                return f"`{shown}`"
            return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'

        text = ROLE.sub(role, text)
        return LITERAL_BLOCK.sub(":\n", text)
