"""A load benchmark for Attune: many phones over real WebSockets against running servers.

Run it with `bench/run` or `python -m bench.load` (see bench/README.md).
"""
