"""Finding the plugins a kong.yml names: Kong's bundled ones we know, and ours in `plugins/`.

A plugin module follows the kong-pdk contract: `Schema`, `version`, `priority`, and a class
`Plugin(config)` whose methods are the phases it runs in. Like Kong's plugin server, we
load each module from its file; a name that is neither ours nor known is an error.
Beside a phase, a plugin may define `async def <phase>_async(self, kong)` doing the same
work without blocking: serve awaits it on its event loop instead of running the phase on a
worker thread (gateway/host.py). Kong's plugin server knows only the phases themselves.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

# The project's plugins/ folder (a checkout or an editable install).
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "plugins"

PHASES = ("access", "response", "log")


class PluginError(Exception):
    """A plugin that cannot be found or loaded."""


@dataclass(frozen=True)
class PluginModule:
    name: str
    schema: list[Any]
    priority: int
    version: str
    cls: type[Any]

    @property
    def phases(self) -> tuple[str, ...]:
        return tuple(p for p in PHASES if callable(getattr(self.cls, p, None)))


_loaded: dict[Path, PluginModule] = {}


def find(name: str, directory: Path = DEFAULT_DIR) -> PluginModule:
    """The plugin `name` from `directory`, loaded once per process."""
    path = (directory / f"{name}.py").resolve()
    if path in _loaded:
        return _loaded[path]
    if not name.replace("-", "_").isidentifier() or not path.is_file():
        raise PluginError(f"unknown plugin {name!r}: no {name}.py in {directory}")
    module = _import(name, path)
    cls = getattr(module, "Plugin", None)
    if not isinstance(cls, type):
        raise PluginError(f"plugin {name!r} ({path}) has no class Plugin")
    plugin = PluginModule(
        name=name,
        schema=list(getattr(module, "Schema", [])),
        priority=int(getattr(module, "priority", 0)),
        version=str(getattr(module, "version", "0")),
        cls=cls,
    )
    _loaded[path] = plugin
    return plugin


def _import(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"authgate_plugin_{name}", path)
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot load plugin {name!r} from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[spec.name]
        raise PluginError(f"plugin {name!r} failed to load: {exc}") from exc
    return module
