"""The hotline's side of the case loop (工单流转): classification, dispatch, review, 回访,
closing, and the supervisors' 督办 list (thin HTTP over cases/loop)."""
