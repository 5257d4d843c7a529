"""The cycle manager service: admission, reports and cycle closing."""
