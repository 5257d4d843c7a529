"""The model store: jobs, plans, protocols and numbered checkpoints."""
