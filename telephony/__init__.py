"""Asterisk integration: runtime, configuration rendering, AMI client, FastAGI, call control."""
