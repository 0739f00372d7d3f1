"""回访 calls: the service calls the callers of cases waiting for 回访 and asks two questions."""
