"""``python -m fedfair.run``: the torchrun entry point under its public name.

The runtime lives in :mod:`fedfair.runtime`; this module only keeps the command that README,
docs and launch scripts give working.
"""
from __future__ import annotations

from fedfair.runtime.run import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
