"""Loop reports for supervisors: figures per department, city and period, their
exports, and the scheduled daily and weekly files."""
