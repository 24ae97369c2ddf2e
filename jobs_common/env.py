"""Reading a job's settings from its environment (the Batch job definitions set it; docs/monitoring.md).

Shared by the scheduled jobs so an unset, empty or malformed variable is treated, and named, the same way
in each of them: empty means "use the default", anything unparseable stops the job with the variable, its
value and what is allowed.
"""

from __future__ import annotations

import os

from model_package.errors import JobConfigError

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in TRUE:
        return True
    if value.strip().lower() in FALSE:
        return False
    raise JobConfigError(f"{name}={value!r}: expected one of true/false, 1/0, yes/no, on/off")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise JobConfigError(f"{name}={value!r}: expected an integer") from None
    if number < minimum:
        raise JobConfigError(f"{name}={value!r}: must be at least {minimum}")
    return number


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value else default


def require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise JobConfigError(f"{name} is not set; the job needs it (see docs/monitoring.md)")
    return value
