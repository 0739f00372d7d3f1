"""The lab: a complete hotline on this machine on free ports (Asterisk, the service, pjsua2
parties). The demo, the tests and the benchmarks use it; it is not part of the shipped package."""
