"""newsgraph: news-article files into MongoDB, served over GraphQL.

This package is the top of the house: the ``newsgraph`` command (``cli``), a thin
layer over ``loaders`` (files -> store) and ``api`` (store -> clients), which
meet only at the store through the shared contract in ``core``.
"""

__version__ = "0.1.0"
