"""What every feature shares: configuration, personal-data primitives, logging, task helpers,
domain errors, and the fact and event types that cross features. A leaf: it imports nothing of
the project (import-linter keeps it so)."""
