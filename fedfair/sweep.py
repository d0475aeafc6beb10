"""``python -m fedfair.sweep``: the command the docs use, an alias of ``fedfair.experiments.sweep``."""
import sys

from .experiments.sweep import main

if __name__ == "__main__":
    sys.exit(main())
