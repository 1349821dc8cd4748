"""News for subscriptions: ``feed`` (one poll of the store per worker, fanned
out to its subscriptions) and ``allowance`` (the memory those subscriptions
hold, bounded in bytes per worker and per client)."""
