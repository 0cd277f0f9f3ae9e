"""How `serve` runs a plugin's phases (gateway/host.py): a phase the plugin also offers as a
coroutine (`<phase>_async`) is awaited on serve's event loop, with no hop to a worker
thread; any other phase runs as kong-pdk code does, on a worker thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..gateway_harness import CountingUpstream, GatewayProcess, gateway_env

# Each phase answers with the name of the thread it ran on and which method ran.
PLUGIN = """
import threading

Schema = []
version = "1.0.0"
priority = 10


def _answer(kong, method):
    thread = threading.current_thread().name.encode()
    kong.response.exit(200, thread, {{"X-Method": method}})


class Plugin:
    def __init__(self, config):
        pass

    def access(self, kong):
        _answer(kong, "access")
{coroutine}
"""
COROUTINE = """
    async def access_async(self, kong):
        _answer(kong, "access_async")
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    plugins = tmp_path_factory.mktemp("plugins")
    (plugins / "both.py").write_text(PLUGIN.format(coroutine=COROUTINE))
    (plugins / "blocking.py").write_text(PLUGIN.format(coroutine=""))
    upstream = CountingUpstream()
    service = {"name": "s", "url": upstream.url}
    config = {
        "_format_version": "3.0",
        "services": [
            {
                **service,
                "routes": [
                    {"name": "both", "paths": ["/both"], "plugins": [{"name": "both"}]},
                    {"name": "blocking", "paths": ["/blocking"], "plugins": [{"name": "blocking"}]},
                ],
            }
        ],
    }
    tmp = Path(tmp_path_factory.mktemp("serve"))
    process = GatewayProcess(config, tmp, gateway_env(plugins_dir=str(plugins)))
    yield process
    process.stop()
    upstream.close()


def test_a_coroutine_phase_runs_on_the_event_loop(gateway: GatewayProcess) -> None:
    with gateway.client() as client:
        answer = client.post("/both/x", content=b"{}")
    assert answer.headers["x-method"] == "access_async"
    assert answer.text == "MainThread"  # uvicorn runs its event loop on the main thread


def test_a_plain_phase_runs_on_a_worker_thread(gateway: GatewayProcess) -> None:
    with gateway.client() as client:
        answer = client.post("/blocking/x", content=b"{}")
    assert answer.headers["x-method"] == "access"
    assert answer.text.startswith("plugin")  # PluginHost's pool (thread_name_prefix)
