"""What each request did: ``stats`` (counted as it runs), ``metrics``
(Prometheus at ``/metrics``), ``logs`` (the access log and the rest).
"""
