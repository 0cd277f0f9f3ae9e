"""Hosting plugin instances the way Kong's plugin server does, inside `serve`.

One instance per plugin entity, built at start (Kong's StartInstance): a plugin that
cannot be found or constructed stops `serve` from starting. Per request, the plugins that
apply are chosen like Kong chooses (the most specific entity of each plugin name wins:
route+service, then route, then service, then global) and run in descending `priority`.
Phases are synchronous kong-pdk code, so they run on a worker thread, unless the plugin
offers the phase as a coroutine too (`async def access_async(self, kong)`, gateway/plugins.py):
that one is awaited on serve's event loop, with no thread hop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.model import Config, PluginConf, Route, Service
from gateway.pdk import Exchange, Kong
from gateway.plugins import DEFAULT_DIR, PluginError, find

log = logging.getLogger("authgate.gateway")

# Stable ids for entities the file names but does not give an id: the same file gives
# the same ids on every start, so plugin state keyed by them survives restarts.
_IDS = uuid.UUID("6f0f7a52-8c1e-4d36-9d54-0b5bd1f7c1a9")


def entity(kind: str, item: Route | Service) -> dict[str, Any]:
    """The entity table kong.router.get_route()/get_service() returns."""
    given = item.raw.get("id")
    ident = str(given) if given else str(uuid.uuid5(_IDS, f"{kind}:{item.name}"))
    return {"id": ident, "name": item.name}


@dataclass(frozen=True)
class Instance:
    conf: PluginConf
    priority: int
    phases: frozenset[str]
    plugin: Any
    coroutines: dict[str, Any]  # phase -> the plugin's `<phase>_async`, where it has one


class PluginHost:
    def __init__(self, config: Config, plugins_dir: Path = DEFAULT_DIR, threads: int = 64) -> None:
        self.instances: list[Instance] = []
        for conf in config.plugins:
            if not conf.enabled:
                continue
            module = find(conf.name, plugins_dir)
            try:
                plugin = module.cls(conf.config)
            except Exception as exc:
                raise PluginError(
                    f"{conf.where}: plugin {conf.name!r} failed to start: {exc}"
                ) from exc
            coroutines = {
                phase: method
                for phase in module.phases
                if inspect.iscoroutinefunction(method := getattr(plugin, f"{phase}_async", None))
            }
            phases = frozenset(module.phases)
            self.instances.append(Instance(conf, module.priority, phases, plugin, coroutines))
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="plugin")
        self._chains: dict[str, tuple[Instance, ...]] = {}
        for route in config.routes:
            self._chains[route.name] = self._chain(route)

    def chain(self, route: Route) -> tuple[Instance, ...]:
        return self._chains.get(route.name, ())

    def _chain(self, route: Route) -> tuple[Instance, ...]:
        best: dict[str, tuple[int, Instance]] = {}
        for inst in self.instances:
            conf = inst.conf
            if conf.consumer:
                continue  # consumers are identified by auth plugins; serve runs none
            if conf.route and conf.route != route.name:
                continue
            if conf.service and conf.service != route.service:
                continue
            rank = 2 * bool(conf.route) + bool(conf.service)
            if conf.name not in best or rank > best[conf.name][0]:
                best[conf.name] = (rank, inst)
        return tuple(sorted((i for _, i in best.values()), key=lambda i: -i.priority))

    async def run(
        self, phase: str, chain: tuple[Instance, ...], ex: Exchange, stop_on_exit: bool = True
    ) -> None:
        """Runs `phase` of each plugin in order; stops at the first that ends the request."""
        loop = asyncio.get_running_loop()
        kong = None  # made only when a plugin here runs this phase
        for inst in chain:
            if phase not in inst.phases:
                continue
            kong = kong or Kong(ex)
            coroutine = inst.coroutines.get(phase)
            if coroutine is not None:
                await coroutine(kong)
            else:
                await loop.run_in_executor(self.executor, getattr(inst.plugin, phase), kong)
            if stop_on_exit and ex.exit is not None:
                return

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
