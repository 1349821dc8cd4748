"""News for subscriptions: ``feed`` (one poll of the store per worker, fanned
out to its subscriptions)."""
