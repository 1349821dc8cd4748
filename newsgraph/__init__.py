"""newsgraph: news-article files into MongoDB, served over GraphQL.

The two halves meet only at the store: ``loaders`` writes article documents in the
shape defined by :mod:`newsgraph.document`, and ``api`` reads them.
"""

__version__ = "0.1.0"
