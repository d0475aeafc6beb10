"""Test-only fault injection, driven by the ``FEDFAIR_FAULT`` environment variable.

``FEDFAIR_FAULT="rank=2,round=5"`` makes rank 2 SIGKILL itself at the start of round 5;
``FEDFAIR_FAULT="rank=2,round=3,hang"`` makes it stop responding (sleep) instead. Several
faults are separated by ``;``. A fault fires only in the torchrun attempt it names
(``attempt=K``, default 0, compared with ``TORCHELASTIC_RESTART_COUNT``), so a restarted job
does not kill itself again. ``once=PATH`` fires in any attempt, but only if PATH does not exist
(it is created first): restart counts are per node, so multi-node tests use this. Unset (the
normal case), this module does nothing.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

ENV = "FEDFAIR_FAULT"


@dataclass(frozen=True)
class Fault:
    rank: int
    round: int
    hang: bool = False
    attempt: int | None = 0
    once: str | None = None


def parse(text: str) -> list[Fault]:
    faults = []
    for spec in filter(None, (s.strip() for s in text.split(";"))):
        fields: dict[str, str] = {}
        for item in (p.strip() for p in spec.split(",")):
            key, _, value = item.partition("=")
            fields[key] = value
        try:
            once = fields.get("once") or None
            attempt = int(fields["attempt"]) if "attempt" in fields else (None if once else 0)
            faults.append(Fault(rank=int(fields["rank"]), round=int(fields["round"]), hang="hang" in fields,
                                attempt=attempt, once=once))
        except (KeyError, ValueError):
            raise ValueError(f"{ENV}={text!r} is invalid: expected 'rank=R,round=T[,hang][,attempt=K][,once=PATH]' "
                             "(several separated by ';')") from None
    return faults


def current_attempt() -> int:
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def maybe_fail(rank: int, round: int) -> None:
    """Called by every rank at the start of every round."""
    text = os.environ.get(ENV)
    if not text:
        return
    for f in parse(text):
        if f.rank != rank or f.round != round or (f.attempt is not None and f.attempt != current_attempt()):
            continue
        if f.once is not None:
            try:
                open(f.once, "x").close()
            except FileExistsError:
                continue
        if f.hang:
            time.sleep(24 * 3600)
        os.kill(os.getpid(), signal.SIGKILL)
