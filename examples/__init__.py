"""Examples of services a team runs behind authgate; each imports nothing from authgate."""
