"""Read models: pure event-to-view mappings, the Redis view store and the projector runner."""
