"""spectraflow benchmarks.

Each ``bench/bench_<name>.py`` module has a ``main()`` that measures spectraflow and a reference
side by side in one run, prints the ratios and writes ``bench/results/<name>.json``. Run them all
with ``python -m bench`` (or ``make bench``), or some with ``python -m bench <name> ...``.
"""

from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"
"""Directory of the JSON results, one ``<name>.json`` per benchmark."""
