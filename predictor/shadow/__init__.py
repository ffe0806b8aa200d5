"""Shadow (silent) deployment: a second model answers every request too, off the response path."""
