"""Each list of choices is written once: the config's Literal types against the layers that act on
them (the mechanism imports no config, so the two are compared here rather than derived)."""
from __future__ import annotations

from typing import get_args

from fedfair.config import mechanism as config_mechanism
from fedfair.config import sections
from fedfair.data import shards
from fedfair.data.prepare import parse_args
from fedfair.experiments.report.runs import PARTITION_ORDER
from fedfair.mechanism import masks, valuation
from fedfair.runtime import wire


def test_the_mechanisms_choices_are_the_configs():
    assert get_args(config_mechanism.Normalize) == get_args(valuation.Normalize)
    assert set(get_args(config_mechanism.MaskScope)) == set(masks.SCOPES)
    assert get_args(sections.Encoding) == ("auto", *wire.ENCODINGS)


def test_partitions_are_read_from_the_config():
    assert shards.PARTITIONS == get_args(sections.Partition) == PARTITION_ORDER
    assert shards.CLA_POOLS == get_args(sections.ClaPool)
    assert parse_args(["--source", "iris", "--out", "x", "--partition", "disjoint"]).partition == "disjoint"
