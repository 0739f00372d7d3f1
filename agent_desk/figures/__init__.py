"""Agent figures (per agent, team and city) and the staffing forecast, from facts."""
