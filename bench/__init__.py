"""Benchmarks: ``python -m bench gen N DIR`` writes a corpus (see ``bench.gen``)."""
