"""The worker's HTTP endpoint: Prometheus metrics, health and readiness, and the customer profile.

`app.py` holds the routes; they read a running engine only through the small `Engine` protocol
(`engine.py`), so another engine (a faust app serving them through its own web server, say) can
offer the same routes with the same names and meanings. `metrics.py` names every metric.
"""
