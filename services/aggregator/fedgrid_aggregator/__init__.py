"""The aggregator service: Celery workers that turn diffs into checkpoints."""
