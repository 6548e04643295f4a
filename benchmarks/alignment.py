"""The alignment benchmarks (WARM, WARP, BOND / J-BOND, speed) on purerl's toy RLHF world.

    python -m benchmarks.alignment --parts warm,warp,bond,speed   # run them, then write the summary
    python -m benchmarks.alignment --summary                      # rebuild results/alignment.md

Each part is its own script (``benchmarks/alignment_<part>.py``, also runnable alone) that writes
JSON records under ``results/alignment/`` and its section to ``results/alignment_<part>.md``; this
script runs the chosen parts in order, one process each (so their compilation caches and memory do
not pile up), and concatenates their sections into ``results/alignment.md``. The shared world
(tiny LM, task, reward models) is ``benchmarks/_alignment.py``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys

from benchmarks._common import RESULTS

PARTS = ("warm", "warp", "bond", "speed")

INTRO = """# Alignment on the toy RLHF world

What the WARM, WARP and BOND papers claim, measured on purerl's toy world
(`docs/alignment/index.md`): a 2-layer, `d_model = 32` decoder pre-trained and SFT'd on a synthetic
prompt -> response task whose gold reward `r*` is known, Bradley-Terry proxy reward models fitted to
preferences labelled from `r*` (with optional flipped labels), and a spurious token the proxies can
be hacked with. Every number below comes from the scripts named in each section; rerun them with
the command in each section's provenance. The papers' models (PaLM, Gemma) and scales are out of
reach on 2 CPU cores, so these are the papers' *qualitative* claims at toy scale; each claim is
marked PASS / FAIL / partial against the criteria of the research notes (`alignment.md` §6.2-6.4),
and a claim that does not reproduce is reported as such.
"""


def summary() -> str:
    sections = [INTRO]
    for part in PARTS:
        module = importlib.import_module(f"benchmarks.alignment_{part}")
        sections.append(module.summary())
    return "\n\n".join(s.strip() + "\n" for s in sections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts to run")
    parser.add_argument("--summary", action="store_true", help="only rebuild alignment.md")
    args = parser.parse_args()
    if not args.summary:
        for part in args.parts.split(","):
            if part not in PARTS:
                raise SystemExit(f"unknown part {part!r}; choose from {PARTS}")
            subprocess.run([sys.executable, "-m", f"benchmarks.alignment_{part}"], check=True)
    text = summary()
    path = os.path.join(RESULTS, "alignment.md")
    with open(path, "w") as f:
        f.write(text)
    print(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
