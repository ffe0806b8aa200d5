"""Multi-armed bandit routing: several model versions, each request answered by one arm."""
