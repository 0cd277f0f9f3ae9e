"""A member service standing for any upstream behind authgate.

It trusts the X-Auth-* headers only because nginx is the only thing that can reach it,
keeps its members in SQLite and deletes a user's members when `user.deleted` arrives on
the events exchange. It imports nothing from authgate: a team's own service needs none.
"""
