"""The whole grid on one machine: child processes and embedded Redis/PostgreSQL."""

from fedgrid.localstack.supervisor import LocalStack, StackInfo, read_stack_info

__all__ = ["LocalStack", "StackInfo", "read_stack_info"]
