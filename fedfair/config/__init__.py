"""Typed run configuration: the sections (``sections.py``; the [mechanism] section and its tables in
``mechanism.py``, each method's own table in ``fedfair.strategies.settings``), their checks
(``checks.py``) and their TOML/override I/O (``loading.py``).

Every field has a default and a docstring (the string literal under it). Validation happens in
``__post_init__`` so that a bad value stops the job before any process group exists, with one
line naming the field, the value and what is allowed.
"""
from .checks import ConfigError
from .loading import SECTIONS, apply_overrides, from_dict, load_config, load_recorded, to_toml, upgrade_recorded
from .mechanism import FedCESettings, GTGSettings, MechanismConfig
from .sections import (
    LATER_FIELDS,
    MOVED,
    NOT_FOR_FILES,
    PAD_DATASETS,
    AdversaryConfig,
    Behaviour,
    CommConfig,
    Config,
    DataConfig,
    Dataset,
    Partition,
    RunConfig,
    TrainConfig,
    run_identity,
)

__all__ = ["SECTIONS", "apply_overrides", "from_dict", "load_config", "load_recorded", "to_toml", "upgrade_recorded",
           "LATER_FIELDS", "MOVED", "NOT_FOR_FILES", "PAD_DATASETS", "AdversaryConfig", "Behaviour", "CommConfig",
           "Config", "ConfigError", "Dataset", "DataConfig", "FedCESettings", "GTGSettings", "MechanismConfig",
           "Partition", "RunConfig", "TrainConfig", "run_identity"]
