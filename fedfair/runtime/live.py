"""Live metrics: TensorBoard event files from the server (``run.tensorboard = true``).

The server's rows go to ``<run folder>/tb`` as they are written to the CSV files, so a long run
can be watched with ``tensorboard --logdir logs``; the CSV files stay the source of truth (the
events are a view of them, not a second record). Tags group one metric over all agents in one
chart: ``server/test_acc``, ``r/agent_<i>``, ``q/agent_<i>``, ``density/agent_<i>``,
``bytes_up/agent_<i>``, ``bytes_down/agent_<i>``, ``test_acc/agent_<i>``. Needs the optional
``tensorboard`` package (``pip install tensorboard``, or the ``tensorboard`` extra).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

AGENT_METRICS = ("r", "q", "density", "bytes_up", "bytes_down", "test_acc")
SERVER_METRICS = ("test_acc", "test_loss", "bytes_up", "bytes_down")
FOLDER = "tb"


def require() -> None:
    """One line, before any process group exists, when run.tensorboard is on but the package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ValueError("run.tensorboard = true needs the tensorboard package: pip install tensorboard "
                         "(or pip install 'fedfair[tensorboard]'), or set run.tensorboard = false") from None


class TensorBoardLog:
    """Writes the server's per-round rows as scalars; rows of evaluation-free rounds skip the NaN accuracies."""

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / FOLDER))

    def agent_row(self, row: dict[str, Any]) -> None:
        self._scalars(row, AGENT_METRICS, lambda m: f"{m}/agent_{row['agent']}")

    def server_row(self, row: dict[str, Any]) -> None:
        self._scalars(row, SERVER_METRICS, lambda m: f"server/{m}")
        self.writer.flush()

    def _scalars(self, row: dict[str, Any], metrics: tuple[str, ...], tag: Callable[[str], str]) -> None:
        for m in metrics:
            v = row.get(m)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                self.writer.add_scalar(tag(m), float(v), global_step=int(row["round"]))

    def close(self) -> None:
        self.writer.close()
