"""Operations, framework-free: API-key parsing, per-key quotas, stream limits, the drain state, Prometheus metrics."""
