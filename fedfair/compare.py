"""``python -m fedfair.compare``: the command the docs use, an alias of ``fedfair.experiments.compare``."""
import sys

from .experiments.compare import main

if __name__ == "__main__":
    sys.exit(main())
