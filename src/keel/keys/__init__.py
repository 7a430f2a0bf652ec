"""Virtual keys and the admin key: creation, salted-hash storage, in-memory verification."""
