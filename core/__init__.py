"""The contract both halves share, and nothing else.

``loaders`` writes article documents and ``api`` reads them; they meet only at
the store, and agree through this package: ``document`` (the document shape,
declared once as data), ``indexes`` (the collections and the indexes every
query relies on), ``news`` (how a loader tells the API, through the store,
what just became news), ``cachekeys`` (the cache keys the API tags answers
with and the loader's purges name), ``keys`` (API keys, kept as hashes),
``config`` (settings from the environment), ``store`` and ``embedded``
(connecting to MongoDB, or to the embedded engine, ``engine``).

It imports neither half: dependencies point from ``api`` and ``loaders`` down
to ``core``, and from the ``newsgraph`` command down to all three.
"""
