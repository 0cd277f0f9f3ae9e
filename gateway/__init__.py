"""authgate gateway: `authgate-gateway`, the declarative Kong config tool (docs/gateway.md).

`validate` a kong.yml offline; `ping`, `dump`, `diff` and `sync` it against a Kong Admin
API; `serve` it here as a Kong-compatible proxy hosting the plugins in `plugins/`.
"""
