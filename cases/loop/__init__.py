"""The case loop (工单流转): classification, dispatch to departments, time limits, review,
follow-up and closing, on top of the call records of ``cases``."""
