"""Write the synthetic detection corpus (CSVs and labels.json) into a directory.

    python tools/make_detection_corpus.py DIR [--part dev|holdout]
    lepton-ops model benchmark DIR

The series are generated deterministically by :mod:`lepton_ops.detect.synthetic`; nothing
is kept in the repository but the generator.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lepton_ops.detect.corpus import write_corpus
from lepton_ops.detect.synthetic import PARTS, corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--part", choices=sorted(PARTS), default="dev")
    args = parser.parse_args()
    series = corpus(args.part)
    args.directory.mkdir(parents=True, exist_ok=True)
    labels = write_corpus(args.directory, series)
    quiet = sum(1 for item in series if not item.windows)
    print(f"{len(series)} series ({quiet} without anomaly) and {labels}")


if __name__ == "__main__":
    main()
