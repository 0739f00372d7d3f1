"""Missed-call callbacks (漏接电话回拨): the tasks made for callers who hung up while queued."""
