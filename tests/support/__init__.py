"""Helpers the tests share (not tests, not fixtures): waiting on real systems, the servers'
URLs and throwaway databases, the service under test, Asterisk's leftovers, the console's HTTP
users, recordings, fault injection and the drills' checker. Fixtures live in tests/conftest.py."""
