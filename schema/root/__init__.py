"""Root operation fields per feature; each delegates to `resolvers/<feature>.py`."""
