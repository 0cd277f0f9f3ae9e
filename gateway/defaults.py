"""Kong 3.0's defaults for the fields of the supported subset, written once.

`entities.py` fills them into what the file leaves out; `diff.py` fills them into Kong's
export the same way, so a field one side leaves out is not a change.
"""

from __future__ import annotations

from typing import Any

SERVICE: dict[str, Any] = {
    "protocol": "http",
    "port": 80,
    "path": None,
    "retries": 5,
    "connect_timeout": 60000,
    "write_timeout": 60000,
    "read_timeout": 60000,
    "enabled": True,
}
ROUTE: dict[str, Any] = {
    "paths": (),
    "methods": (),
    "hosts": (),
    "strip_path": True,
    "preserve_host": False,
    "regex_priority": 0,
    "protocols": ("http", "https"),
}
TARGET: dict[str, Any] = {"port": 8000, "weight": 100}
PLUGIN: dict[str, Any] = {"enabled": True}
