"""The gateway service: the public HTTP API for workers and admins."""
