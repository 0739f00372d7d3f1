"""Cases that arrive without a call: the public web form (市长信箱) and its status page, and
the channel API of the government's other channels (docs/intake.md)."""
