"""Bucketing, as PostHog's flags service and SDKs do it: the SHA-1 based hashes that place a user in
a rollout, a variant or a holdout, and reading a flag definition's variants, holdout and payloads.
Pure functions (no database, no Django); `flags.evaluation` decides flags with them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

# The hash is the first 15 hex digits (60 bits) of the SHA-1, scaled into [0, 1] by 2^60 - 1.
HASH_HEX_DIGITS = 15
HASH_SCALE = float(0xFFFFFFFFFFFFFFF)
VARIANT_SALT = "variant"
HOLDOUT_PREFIX = "holdout-"


# --- hashing --------------------------------------------------------------------------------------


def bucket_hash(prefix: str, identifier: str, salt: str = "") -> float:
    """A uniform, deterministic number in [0, 1] for `prefix + identifier + salt`."""
    digest = hashlib.sha1(f"{prefix}{identifier}{salt}".encode()).hexdigest()
    return int(digest[:HASH_HEX_DIGITS], 16) / HASH_SCALE


def rollout_hash(flag_key: str, identifier: str) -> float:
    return bucket_hash(f"{flag_key}.", identifier)


def variant_hash(flag_key: str, identifier: str) -> float:
    return bucket_hash(f"{flag_key}.", identifier, VARIANT_SALT)


def holdout_hash(identifier: str) -> float:
    """Independent of the flag, so one holdout excludes the same users from every flag it covers."""
    return bucket_hash(HOLDOUT_PREFIX, identifier)


# --- flag structure -------------------------------------------------------------------------------


def flag_filters(flag: Mapping[str, Any]) -> Mapping[str, Any]:
    filters = flag.get("filters")
    return filters if isinstance(filters, Mapping) else {}


def flag_variants(flag: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    multivariate = flag_filters(flag).get("multivariate")
    variants = multivariate.get("variants") if isinstance(multivariate, Mapping) else None
    if not isinstance(variants, list):
        return []
    return [variant for variant in variants if isinstance(variant, Mapping)]


def percentage_number(value: Any) -> float | None:
    """A stored rollout percentage as a float; None for anything that is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def variant_lookup_table(flag: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """(variant key, lower bound inclusive, upper bound exclusive), accumulated in stored order.

    The bounds are accumulated as `previous + percentage / 100`, the very arithmetic the SDKs use,
    so floating-point edges land on the same side everywhere.
    """
    table = []
    lower = 0.0
    for variant in flag_variants(flag):
        percentage = percentage_number(variant.get("rollout_percentage")) or 0.0
        upper = lower + percentage / 100
        table.append((str(variant.get("key")), lower, upper))
        lower = upper
    return table


def matching_variant(flag: Mapping[str, Any], identifier: str) -> str | None:
    """The variant whose range holds the user's variant hash; None when the shares sum below it."""
    table = variant_lookup_table(flag)
    if not table:
        return None
    hashed = variant_hash(str(flag.get("key")), identifier)
    for key, lower, upper in table:
        if lower <= hashed < upper:
            return key
    return None


def holdout_variant(flag: Mapping[str, Any], identifier: str) -> str | None:
    """`holdout-<id>` when the user is in the flag's holdout, else None."""
    exclusion = holdout_exclusion(flag)
    if exclusion is None:
        return None
    variant, percentage = exclusion
    return variant if in_holdout(percentage, holdout_hash(identifier)) else None


def holdout_exclusion(flag: Mapping[str, Any]) -> tuple[str, float] | None:
    """The flag's holdout as (its variant `holdout-<id>`, the exclusion percentage clamped to
    [0, 100]), or None when the flag has none or it is unreadable."""
    holdout = flag_filters(flag).get("holdout")
    if not isinstance(holdout, Mapping):
        return None
    holdout_id = holdout.get("id")
    raw_percentage = holdout.get("exclusion_percentage")
    if holdout_id is None or raw_percentage is None:
        return None
    try:
        percentage = min(max(float(raw_percentage), 0.0), 100.0)
    except (TypeError, ValueError):
        return None
    if math.isnan(percentage):
        return None
    return f"{HOLDOUT_PREFIX}{holdout_id}", percentage


def in_holdout(exclusion_percentage: float, hashed: float) -> bool:
    """Whether the user whose `holdout_hash` is `hashed` is held out. 100 % holds out everyone
    whatever the hash, so a full holdout cannot miss on a hash boundary."""
    return exclusion_percentage == 100.0 or hashed <= exclusion_percentage / 100


def payload_for(flag: Mapping[str, Any], lookup_key: str) -> Any:
    payloads = flag_filters(flag).get("payloads")
    if not isinstance(payloads, Mapping):
        return None
    return payloads.get(lookup_key)
