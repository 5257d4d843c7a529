"""Differential privacy for model updates: clipping, secure noise, accounting.

The modules import nothing from the rest of the package at import time except
fedgrid.errors, so the config, averaging and worker code can all use them.
"""
