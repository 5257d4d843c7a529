"""The model store service: jobs, plans and checkpoints."""
