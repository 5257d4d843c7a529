"""Validation of job, version, plan, protocol, alias and cycle names."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import semver

from fedgrid.errors import InvalidArgument

MAX_NAME_LENGTH = 128
PLAN_FORMATS = ("ops", "torchscript")
LATEST = "latest"

_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")
_CYCLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


def check_name(value: str, what: str) -> str:
    """A job, plan or protocol name: 1-128 characters, no separators or controls."""
    if not value or not value.strip():
        raise InvalidArgument(f"{what} is empty; give it a name")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidArgument(
            f"{what} {value[:20]!r}... is {len(value)} characters long; "
            f"use at most {MAX_NAME_LENGTH}"
        )
    if value != value.strip():
        raise InvalidArgument(f"{what} {value!r} starts or ends with white space")
    if "/" in value or "\\" in value:
        raise InvalidArgument(
            f"{what} {value!r} contains a path separator; use '-' or '_' instead"
        )
    if any(unicodedata.category(char).startswith("C") for char in value):
        raise InvalidArgument(
            f"{what} {value!r} contains a control or invisible character"
        )
    return value


def check_version(value: str) -> str:
    """A semantic version such as 1.0.0 or 2.1.0-rc.1."""
    if len(value) > MAX_NAME_LENGTH or not semver.Version.is_valid(value):
        raise InvalidArgument(
            f"version {value[:40]!r} is not a semantic version; use MAJOR.MINOR.PATCH "
            "such as 1.0.0"
        )
    return value


def version_key(value: str) -> semver.Version:
    """The ordering key of a stored version (newest = highest)."""
    return semver.Version.parse(value)


def check_format(value: str) -> str:
    """A plan format the grid serves."""
    if value not in PLAN_FORMATS:
        raise InvalidArgument(
            f"plan format {value!r} is not served; use one of {', '.join(PLAN_FORMATS)}"
        )
    return value


def check_alias(value: str) -> str:
    """An alias: a letter, then letters, digits, '.', '_' or '-' (so never a number)."""
    if len(value) > MAX_NAME_LENGTH or not _ALIAS.match(value):
        raise InvalidArgument(
            f"alias {value[:40]!r} is not valid; start with a letter and use letters, "
            f"digits, '.', '_' or '-', at most {MAX_NAME_LENGTH} characters"
        )
    return value


def check_cycle_id(value: str) -> str:
    """A cycle id as the cycle manager issues it (the checkpoint idempotency key)."""
    if not value:
        raise InvalidArgument(
            "cycle id is empty; every checkpoint after the first needs the id of "
            "the cycle that produced it"
        )
    if len(value) > MAX_NAME_LENGTH or not _CYCLE_ID.match(value):
        raise InvalidArgument(
            f"cycle id {value[:40]!r} is not valid; use letters, digits, '.', '_', "
            "':' or '-'"
        )
    return value


def check_config_json(value: str, what: str) -> dict[str, Any]:
    """A config given as JSON text: empty means {}, otherwise a JSON object."""
    if not value.strip():
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidArgument(
            f"{what} must be a JSON object, not {type(parsed).__name__}"
        )
    return parsed
