"""The library never chooses a matplotlib backend: a notebook's (or user's) stays in force."""

import pkgutil

import cnnjax.viz


def test_importing_every_plotting_module_and_training_leaves_the_backend_alone(fresh_python):
  modules = ["cnnjax.viz." + m.name for m in pkgutil.iter_modules(cnnjax.viz.__path__)]
  script = ("import importlib, sys, matplotlib\n"
            "for name in sys.argv[1:]: importlib.import_module(name)\n"
            "import cnnjax.train, experiments.detection, experiments.benchmark\n"
            "print(matplotlib.get_backend())")
  assert fresh_python(script, *modules, MPLBACKEND="svg") == ["svg"]
