"""Position and expected wait, told to callers waiting in a queue (issue 17 item 2)."""
