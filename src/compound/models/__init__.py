"""Model backends and the typed call over them. Each backend is one file; ``base.Backend`` is the protocol they
all share; ``typed`` asks any backend for a reply that fits a schema."""
