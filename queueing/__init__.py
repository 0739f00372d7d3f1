"""Skills, routing decisions, queue membership and surge rebalancing."""
