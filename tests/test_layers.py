"""The layers' import directions (DESIGN.md), read off the source: every import statement of
every module, also those inside functions, resolved to an absolute module name.

- fedfair.mechanism imports no fedfair module outside itself, and no torch.distributed;
- fedfair.strategies imports only the mechanism, the config and the registries (fedfair.methods,
  fedfair.valuations: pure data), no torch.distributed;
- fedfair.runtime imports nothing of the experiment tools above it;
- fedfair.config imports no torch and of the strategies only their settings tables (a torch-free leaf).
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fedfair"
EXPERIMENT_TOOLS = ("fedfair.experiments", "fedfair.__main__")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file; ``from X import a`` also yields X.a."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(layer: str, allowed_fedfair: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for line, module in imports(path):
            outside = within(module, ("fedfair",)) and module != "fedfair" and not within(module, allowed_fedfair)
            if outside or within(module, forbidden):
                out.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    return out


def test_relative_imports_resolve_to_absolute_names():
    assert "fedfair.config.MechanismConfig" in [m for _, m in imports(PACKAGE / "strategies" / "base.py")]
    assert "fedfair.mechanism.valuation" in [m for _, m in imports(PACKAGE / "mechanism" / "masks.py")]
    assert "fedfair.runtime.wire" in [m for _, m in imports(PACKAGE / "runtime" / "agent.py")]
    assert "fedfair.data.partitions" in [m for _, m in imports(PACKAGE / "data" / "shards.py")]  # from . import x


@pytest.mark.parametrize("layer, allowed, forbidden", [
    ("mechanism", ("fedfair.mechanism",), ("torch.distributed",)),
    ("strategies", ("fedfair.strategies", "fedfair.mechanism", "fedfair.config", "fedfair.methods",
                    "fedfair.valuations"), ("torch.distributed",)),
    ("runtime", ("fedfair.runtime", "fedfair.mechanism", "fedfair.strategies", "fedfair.config", "fedfair.methods",
                 "fedfair.valuations", "fedfair.data", "fedfair.models", "fedfair.metrics"), EXPERIMENT_TOOLS),
    ("config", ("fedfair.config", "fedfair.methods", "fedfair.valuations", "fedfair.strategies.settings"), ("torch",)),
])
def test_imports_point_down_the_layers(layer, allowed, forbidden):
    assert violations(layer, allowed, forbidden) == []


def test_method_settings_import_only_the_configs_checks():
    """The one module of the strategies the config imports stays a leaf: no torch, nothing above the checks."""
    found = [m for _, m in imports(PACKAGE / "strategies" / "settings.py") if within(m, ("fedfair", "torch"))]
    assert found and all(within(m, ("fedfair.config.checks",)) for m in found), found


def test_a_forbidden_import_is_caught(tmp_path, monkeypatch):
    """The checker itself: a strategy that reached into the runtime would be reported."""
    fake = tmp_path / "fedfair"
    (fake / "strategies").mkdir(parents=True)
    (fake / "strategies" / "bad.py").write_text(
        "from ..runtime.transport import ServerTransport\n\ndef f():\n    import torch.distributed as dist\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert violations("strategies", ("fedfair.strategies", "fedfair.mechanism", "fedfair.config"),
                      ("torch.distributed",)) == [
        "fedfair/strategies/bad.py:1 imports fedfair.runtime.transport",
        "fedfair/strategies/bad.py:1 imports fedfair.runtime.transport.ServerTransport",
        "fedfair/strategies/bad.py:4 imports torch.distributed"]
