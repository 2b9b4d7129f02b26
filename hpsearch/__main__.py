"""``python -m hpsearch``: the same command line as ``hpsearch``."""

import sys

from hpsearch.cli import main

if __name__ == "__main__":
    sys.exit(main())
