"""Generated protobuf modules (package fedgrid.v1)."""
