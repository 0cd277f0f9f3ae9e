"""authgate's topology on one machine: the processes `bin/demo`, the benchmarks and the
tests start (Redis, RabbitMQ, nginx and the services), and stop again.

Not part of the installed packages: it runs from a checkout (`python -m stack.demo`).
"""
