"""``swimpy agent``: a membership daemon beside your services, modelled on ``serf agent``,
with a local HTTP/JSON control API and Prometheus metrics (``docs/agent.md``)."""
