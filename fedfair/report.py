"""``python -m fedfair.report``: the command the docs use, an alias of ``fedfair.experiments.report``."""
import sys

from .experiments.report import main

if __name__ == "__main__":
    sys.exit(main())
