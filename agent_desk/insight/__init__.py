"""Insight: hot-topic alerts (counts of new cases per 事项 and district, and per word of what
callers said, against the same weekday's baseline) and the suggested classification of a case
(a classifier learning from the cases agents classified). docs/insight.md."""
