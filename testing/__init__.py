"""Support shared by the tests and the benchmark."""
