"""Case records (工单): one per call, with its route, timeline, legs, recordings and transcript."""
