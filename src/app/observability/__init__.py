"""Following a request: its id and record (records.py), one log format (logs.py), Prometheus
metrics (metrics.py); the ASGI layer that ties them to every request is in access.py."""
