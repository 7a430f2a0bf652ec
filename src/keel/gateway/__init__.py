"""The hot path: authenticate, validate, resolve, call the provider, respond, trace."""
