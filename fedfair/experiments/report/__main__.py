"""``python -m fedfair.experiments.report`` (also ``python -m fedfair.report``)."""
import sys

from .document import main

if __name__ == "__main__":
    sys.exit(main())
