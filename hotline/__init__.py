"""The hotline service: configuration, command line and the composition root."""
