"""The store, as the API asks it.

``articles`` and ``facets`` (lists and lookups as store queries, checked
before any is sent), ``filters`` (an article filter as one MongoDB query),
``cursors`` (keyset pagination), ``matcher`` (a filter evaluated in memory),
``gateway`` (every store call bounded in time, outages made readable),
``slots`` (bounded worker threads for store calls; load shed past them),
``deadline`` (each request's time, and the calls waiting on it),
``changes`` (whether the loaders changed the articles, as their marker says).
"""
