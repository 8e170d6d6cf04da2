"""Model backends. Each file is one backend; ``base.Backend`` is the protocol they all share."""
