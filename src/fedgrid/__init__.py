"""fedgrid: a platform for private, cross-device federated learning."""

__version__ = "0.1.0"
