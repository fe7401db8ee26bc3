"""Benchmarks behind `citywatch bench` / `make bench`: each figure beside a same-run reference."""
