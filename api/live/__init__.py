"""News for subscriptions: ``feed`` (one poll of the store per worker, fanned
out to its subscriptions), ``allowance`` (every bound on how many
subscriptions run and what they hold, per worker and per client) and
``unsent`` (what a subscription's connection holds that its client has not
read)."""
