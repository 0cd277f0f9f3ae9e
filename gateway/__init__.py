"""authgate gateway: declarative Kong config tool (not built yet: issue 5)."""
