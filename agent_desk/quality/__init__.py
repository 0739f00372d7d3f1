"""Quality inspection (质检): the daily sample of calls, the checklist, scores to agents."""
