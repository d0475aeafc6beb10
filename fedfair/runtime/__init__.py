"""The runtime: one server (rank 0) and N agents (ranks 1..N) on torch.distributed.

FedLab's split: the *network* end moves bytes, the *handlers* decide what they mean.

- :mod:`.transport` — point-to-point sends and receives with deadlines and the byte ledger;
- :mod:`.wire` — everything about the bytes: reward codecs, the size header, the upload row,
  the agents' round statistics;
- :mod:`.server`, :mod:`.agent` — the spec's "One round, server" and "One round, agent i",
  written once for every method (a :class:`fedfair.strategies.Strategy` decides);
- :mod:`.training` — local training, evaluation, the learning-rate schedule;
- :mod:`.run` — the torchrun entry point (``python -m fedfair.run``), :mod:`.local` — all ranks
  as local processes (tests, notebooks);
- :mod:`.checkpoint`, :mod:`.logs` — what a run writes; :mod:`.faults` — test-only fault injection.
"""
