"""mkdocs hook: the benchmark results pages, read from benchmarks/ at build time, and the few
GitHub-flavoured Markdown habits of purerl's pages that Python-Markdown reads differently.

Nothing is copied into docs/, so the site cannot go stale: every build takes

* ``benchmarks/results/*.md`` as pages at the same paths (``benchmarks/results/<name>.md``) and every
  ``*.png`` under ``benchmarks/results/`` as a static file, so the pages' own relative image links
  (``alignment/warm_bon.png``) resolve unchanged;
* ``benchmarks/README.md`` (the script -> claim -> results index) as ``benchmarks/index.md``, with its
  ``results/<name>.md`` mentions turned into links and a list of every results page appended;
* the pages into the "Benchmarks" section of the nav (named like their files, as
  benchmarks/README.md names them; the index lists each with its first heading);
* plots under ``benchmarks/results/<name>/`` that ``<name>.md`` mentions without embedding (e.g.
  ``learning/<env>.png``) into a "Plots" section at the end of that page.

GitHub-flavoured habits, rewritten for every page (the sources stay as they are, correct on GitHub):

* nested lists indented by 2 or 3 spaces (Python-Markdown needs 4, else the items run into the
  parent's text): re-indented to 4 spaces per level;
* a list that starts right under a paragraph line (Python-Markdown needs a blank line between;
  GitHub starts a list there, an ordered one only when it starts at 1);
* ``\\|`` inside a code span in a table row (GitHub needs the escape, Python-Markdown shows the
  backslash): written ``|``; Python-Markdown already skips pipes inside code spans when it splits
  the row.

Links written for the repository (``docs/alignment/warm.md`` -> ``../../benchmarks/results/...``) are
rewritten to the site's copy, so the markdown stays correct on GitHub and in the site alike. A link
to a file that exists in neither place is left alone, and ``mkdocs build --strict`` reports it.
"""

from __future__ import annotations

import os
import posixpath
import re

from mkdocs.structure.files import File, Files

RESULTS = "benchmarks/results"
INDEX = "benchmarks/index.md"
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _root(config) -> str:
    return os.path.dirname(os.path.abspath(config.config_file_path))


def _results_pages(root: str) -> list[str]:
    folder = os.path.join(root, RESULTS)
    return sorted(f"{RESULTS}/{name}" for name in os.listdir(folder) if name.endswith(".md"))


def _images(root: str) -> list[str]:
    out = []
    for dirpath, _, names in os.walk(os.path.join(root, RESULTS)):
        rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
        out += [f"{rel}/{name}" for name in names if name.endswith(".png")]
    return sorted(out)


def _name(path: str) -> str:
    return posixpath.splitext(posixpath.basename(path))[0]


def _heading(root: str, path: str) -> str:
    """The page's first heading (some results pages start at ``##``)."""
    with open(os.path.join(root, path), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return _name(path)


def on_config(config, **kwargs):
    """Fill the nav's "Benchmarks" entry with the index and one entry per results page, named like
    the file (``learning``), as benchmarks/README.md names them."""
    root = _root(config)
    pages = [{_name(path): path} for path in _results_pages(root)]
    for i, entry in enumerate(config.nav or []):
        if isinstance(entry, dict) and entry.get("Benchmarks") == INDEX:
            config.nav[i] = {"Benchmarks": [INDEX, *pages]}
    return config


def _index_markdown(root: str) -> str:
    with open(os.path.join(root, "benchmarks/README.md"), encoding="utf-8") as f:
        text = f.read()
    existing = set(_results_pages(root))

    def link(match: re.Match) -> str:
        path = f"benchmarks/{match.group(1)}"
        if path in existing:
            return f"[`{match.group(1)}`]({posixpath.relpath(path, 'benchmarks')})"
        return match.group(0)

    text = re.sub(r"`(results/[\w.-]+\.md)`", link, text)
    listing = "\n".join(
        f"* [`{posixpath.basename(path)}`]({posixpath.relpath(path, 'benchmarks')}): "
        f"{_heading(root, path)}"
        for path in _results_pages(root)
    )
    note = (
        "The pages below are `benchmarks/results/*.md` (the scripts' results and the notes beside "
        "them), read from the repository when the site is built."
    )
    return f"{text.rstrip()}\n\n## Results pages\n\n{note}\n\n{listing}\n"


def on_files(files: Files, config, **kwargs) -> Files:
    root = _root(config)
    for path in _results_pages(root) + _images(root):
        files.append(File(path, root, config.site_dir, config.use_directory_urls))
    files.append(File.generated(config, INDEX, content=_index_markdown(root)))
    return files


LIST_ITEM = re.compile(r"^( *)([*+-]|\d+[.)])( +|$)")
FENCE = re.compile(r"^ *(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def _table_pipes(line: str) -> str:
    if not line.lstrip().startswith("|"):
        return line
    return CODE_SPAN.sub(lambda m: m.group(0).replace("\\|", "|"), line)


def _continuation(stack: list[tuple[int, int]], line: str) -> str:
    """Re-indent a line inside a list item: the deepest item whose text column it reaches owns it."""
    indent = len(line) - len(line.lstrip(" "))
    for depth in range(len(stack) - 1, -1, -1):
        column = stack[depth][1]
        if indent >= column:
            return " " * (4 * (depth + 1) + indent - column) + line.lstrip(" ")
    return line  # a lazy continuation line: Python-Markdown reads it as GitHub does


def gfm_to_python_markdown(markdown: str) -> str:
    """Rewrite the GitHub-only list and table habits listed in the module docstring."""
    out: list[str] = []
    # the open list items, outermost first: (marker indent, text column)
    stack: list[tuple[int, int]] = []
    fence = None  # the open fence's marker, when inside a fenced block
    fence_line = None  # the open fence line as written, and as re-indented
    previous_blank = True
    for line in markdown.split("\n"):
        stripped = line.strip()
        if fence is not None:
            if stack and fence_line is not None:
                old, new = fence_line
                added = len(new) - len(new.lstrip(" ")) - (len(old) - len(old.lstrip(" ")))
                line = " " * added + line if stripped and added > 0 else line
            out.append(line)
            if stripped.startswith(fence):
                fence = fence_line = None
            continue
        opening = FENCE.match(line)
        if opening:
            fence = opening.group(1)
            if stack and line.startswith(" "):
                fence_line = (line, _continuation(stack, line))
                line = fence_line[1]
            else:
                stack = []
            out.append(line)
            previous_blank = False
            continue
        if not stripped:
            out.append(line)
            previous_blank = True
            continue
        item = LIST_ITEM.match(line)
        if item:
            indent = len(item.group(1))
            # GitHub lets a list interrupt a paragraph (an ordered one only from 1); Python-Markdown
            # needs a blank line first.
            starts = item.group(2) in "*+-" or item.group(2)[:-1] == "1"
            if not stack and not previous_blank and starts and not out[-1].lstrip().startswith("#"):
                out.append("")
            while stack and stack[-1][0] > indent:
                stack.pop()
            if stack and stack[-1][0] == indent:
                stack.pop()
            stack.append((indent, item.end()))
            out.append(" " * (4 * (len(stack) - 1)) + line.lstrip(" "))
        elif line.startswith(" ") and stack:
            out.append(_continuation(stack, line))
        else:
            if previous_blank:
                stack = []
            out.append(_table_pipes(line))
        previous_blank = False
    return "\n".join(out)


def _repo_path(src_uri: str) -> str:
    """Where a site file lives in the repository."""
    if src_uri == INDEX:
        return "benchmarks/README.md"
    if src_uri.startswith(RESULTS + "/"):
        return src_uri
    return f"docs/{src_uri}"


def _site_path(repo_path: str) -> str | None:
    if repo_path == "benchmarks/README.md":
        return INDEX
    if repo_path.startswith(RESULTS + "/"):
        return repo_path
    if repo_path.startswith("docs/"):
        return repo_path[len("docs/") :]
    return None


def _plots_section(root: str, page_path: str, markdown: str) -> str:
    """Plots under ``benchmarks/results/<name>/`` that the page does not embed yet."""
    stem = posixpath.splitext(page_path)[0]
    folder = os.path.join(root, stem)
    if not os.path.isdir(folder):
        return ""
    embedded = {
        posixpath.normpath(posixpath.join(RESULTS, m.group(2))) for m in LINK.finditer(markdown)
    }
    missing = [p for p in _images(root) if p.startswith(stem + "/") and p not in embedded]
    missing.sort(key=lambda p: (p.count("/"), p))  # the folder's own plots before its runs' plots
    if not missing:
        return ""
    lines = [
        "",
        "## Plots",
        "",
        f"The plots in `{stem}/` (added by the docs build; the page above names them).",
        "",
    ]
    for path in missing:
        rel = posixpath.relpath(path, RESULTS)
        lines += [f"`{rel}`", "", f"![{rel}]({rel})", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files: Files, **kwargs) -> str:
    src_uri = page.file.src_uri
    here = posixpath.dirname(_repo_path(src_uri))
    site_dir = posixpath.dirname(src_uri)

    def fix(match: re.Match) -> str:
        target = match.group(2)
        if SCHEME.match(target) or target.startswith(("#", "/")):
            return match.group(0)
        path, sep, anchor = target.partition("#")
        site = _site_path(posixpath.normpath(posixpath.join(here, path)))
        if site is None or files.get_file_from_path(site) is None:
            return match.group(0)
        new = posixpath.relpath(site, site_dir or ".") + sep + anchor
        return f"{match.group(1)}{new}{match.group(3)}"

    markdown = gfm_to_python_markdown(LINK.sub(fix, markdown))
    if src_uri.startswith(RESULTS + "/") and src_uri.endswith(".md"):
        markdown += _plots_section(_root(config), src_uri, markdown)
    return markdown
