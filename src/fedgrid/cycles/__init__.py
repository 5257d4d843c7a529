"""Cycle state: admission, reports, deadlines, and the client other services use."""
