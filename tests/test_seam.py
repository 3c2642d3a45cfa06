"""The CPU fast paths are reached only through `models/layers.py` and `train/parallel.py`: no other module (the
benchmark, which measures the kernels themselves, aside) imports `ops.xla_cpu` or `ops.kernels`, and no model
pools with flax's `nn.max_pool`/`nn.avg_pool` around the layers."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).parents[1]
CPU_MODULES = ("cnnjax.ops.xla_cpu", "cnnjax.ops.kernels")
ALLOWED = ("cnnjax/ops/", "cnnjax/models/layers.py", "cnnjax/train/parallel.py",
           "experiments/bench/")  # the benchmark times the kernels themselves
SOURCES = sorted(path for folder in ("cnnjax", "experiments") for path in (ROOT / folder).rglob("*.py"))


def _imported(tree: ast.AST) -> set[str]:
  """Every module an import statement names, `from a import b` as both `a` and `a.b`."""
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
  return names


def _reaches_cpu_paths(names: set[str]) -> list[str]:
  return sorted(name for name in names if any(name == m or name.startswith(m + ".") for m in CPU_MODULES))


def test_the_scan_finds_the_imports_it_forbids():
  tree = ast.parse("from cnnjax.ops import xla_cpu\nimport cnnjax.ops.kernels.build\nfrom cnnjax.ops import conv\n")
  assert _reaches_cpu_paths(_imported(tree)) == ["cnnjax.ops.kernels.build", "cnnjax.ops.xla_cpu"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_seam_imports_the_cpu_paths(path):
  relative = path.relative_to(ROOT).as_posix()
  if relative.startswith(ALLOWED):
    return
  assert _reaches_cpu_paths(_imported(ast.parse(path.read_text()))) == [], relative


def test_models_pool_through_the_layers():
  flax_pools = []
  for path in SOURCES:
    for node in ast.walk(ast.parse(path.read_text())):
      if (isinstance(node, ast.Attribute) and node.attr in ("max_pool", "avg_pool")
          and isinstance(node.value, ast.Name) and node.value.id == "nn"):
        flax_pools.append(f"{path.relative_to(ROOT)}:{node.lineno}")
  assert [place for place in flax_pools if not place.startswith("cnnjax/models/layers.py")] == []
