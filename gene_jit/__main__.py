"""`python -m gene_jit`: the same as the `gene-jit` console script."""

from __future__ import annotations

import sys

from gene_jit.cli import main

if __name__ == "__main__":
    sys.exit(main())
