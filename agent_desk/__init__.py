"""The agents' and supervisors' web console, and the pjsua2 softphone."""
