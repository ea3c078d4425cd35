"""A project's flag definitions as SDKs see them, built once per change and held per process.

Both SDK-facing endpoints read the same snapshot: `/flags` evaluates it, and the local-evaluation
endpoint serves it (with its ETag), so local and remote answers can never disagree.

Freshness: every write to a flag, cohort, group type or experiment of a project bumps the project's
`FlagDefinitionsVersion` inside the same transaction (`accounts.versions`), so the new version and
the new rows commit together or not at all. Each SDK request reads that version with
the project in one statement, and every cache is keyed by it, so no process ever serves definitions
older than the last commit. Writes through `QuerySet.update()` or `bulk_create()` send no signals:
code that changes flags in bulk must call `flag_definitions_changed` itself, inside its transaction.

Caches, fastest first: a per-process map project → definitions of one version (a request whose
version matches uses it without deserialising anything); the shared cache (Redis when configured),
holding only the serialized body, so a process that sees a new version rebuilds from the body
instead of the database; the database.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache

from accounts.group_types import group_type_mapping
from accounts.project_tokens import DeliveryProject
from accounts.versions import project_data_changed
from experiments_api.ids import id_from_text
from flags.compiled import CompiledFlag, compile_flag
from flags.evaluation import dependency_chain
from flags.flag_set import CompiledFlagSet
from flags.hooks import flag_experiments
from flags.models import Cohort, FeatureFlag

CACHE_KEY_FORMAT = "flag-definitions-body:{project_id}:{version}"
# Entries are never stale (the key holds the version); the timeout only frees memory.
CACHE_TIMEOUT_SECONDS = 24 * 60 * 60
# Projects whose definitions one process keeps; the least recently used beyond this are dropped.
PROCESS_CACHE_PROJECTS = 256


@dataclass(frozen=True)
class ProjectFlagDefinitions:
    """One version of a project's flags, as served to SDKs and as `/flags` evaluates them.

    `flags` are the definitions sorted by key, `flags_by_key` the same indexed by key and
    `compiled_flags` the same compiled for evaluation (in the same order); `cohorts`
    maps the id of every dynamic cohort the flags reference to its property group (static cohorts
    are left out, as PostHog does: they have no members an SDK could check); `body` is the
    serialized local-evaluation response and `etag` its weak ETag. Shared by every request of a
    process that sees `version`: never mutate it (but for the memos `encoded_answers`,
    `encoded_shared_answers` and the decision tables of `flag_set`).
    """

    version: int
    flags: tuple[dict[str, Any], ...]
    group_type_mapping: dict[str, str]
    cohorts: dict[str, Any]
    body: bytes
    etag: str
    flags_by_key: dict[str, dict[str, Any]] = field(init=False, repr=False, compare=False)
    compiled_flags: tuple[CompiledFlag, ...] = field(init=False, repr=False, compare=False)
    # The same arranged to evaluate all of them at once (`/flags` without named keys).
    flag_set: CompiledFlagSet = field(init=False, repr=False, compare=False)
    # Position of each flag's key in `flags` (and `compiled_flags`).
    positions: dict[str, int] = field(init=False, repr=False, compare=False)
    # One flag's answer as encoded JSON, by what it depends on (filled by `flags.delivery`).
    encoded_answers: dict[tuple, bytes] = field(init=False, repr=False, compare=False)
    # The same by the identity of a compiled flag's shared result (`CompiledFlag.holds`): that
    # result lives as long as these definitions, so no other object can take its id meanwhile.
    encoded_shared_answers: dict[int, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "flags_by_key", {flag["key"]: flag for flag in self.flags})
        object.__setattr__(self, "compiled_flags", tuple(compile_flag(flag) for flag in self.flags))
        object.__setattr__(self, "flag_set", CompiledFlagSet(self.compiled_flags))
        object.__setattr__(self, "positions", {flag["key"]: index for index, flag in enumerate(self.flags)})
        object.__setattr__(self, "encoded_answers", {})
        object.__setattr__(self, "encoded_shared_answers", {})

    def compiled_flags_named(self, keys: set[str]) -> list[CompiledFlag]:
        """The compiled flags with these keys, in the order of `flags` (unknown keys are skipped)."""
        positions = sorted(self.positions[key] for key in keys if key in self.positions)
        return [self.compiled_flags[position] for position in positions]

    @classmethod
    def from_body(cls, version: int, body: bytes) -> ProjectFlagDefinitions:
        decoded = json.loads(body)
        return cls(
            version,
            tuple(decoded["flags"]),
            decoded["group_type_mapping"],
            decoded["cohorts"],
            body,
            f'W/"{hashlib.sha256(body).hexdigest()[:32]}"',
        )


# project id → its definitions at the last version this process saw. Sync workers serve one request
# at a time; with threads, the worst a race does is build the same version twice.
_process_definitions: OrderedDict[int, ProjectFlagDefinitions] = OrderedDict()


def project_flag_definitions(project: DeliveryProject) -> ProjectFlagDefinitions:
    """The project's definitions at its current version: from this process, the shared cache
    (the serialized body only) or the database, in that order."""
    held = _process_definitions.get(project.id)
    if held is not None and held.version == project.definitions_version:
        _process_definitions.move_to_end(project.id)
        return held
    key = CACHE_KEY_FORMAT.format(project_id=project.id, version=project.definitions_version)
    body = cache.get(key)
    if isinstance(body, bytes):
        definitions = ProjectFlagDefinitions.from_body(project.definitions_version, body)
    else:
        definitions = build_flag_definitions(project.id, version=project.definitions_version)
        cache.set(key, definitions.body, CACHE_TIMEOUT_SECONDS)
    _process_definitions[project.id] = definitions
    _process_definitions.move_to_end(project.id)
    while len(_process_definitions) > PROCESS_CACHE_PROJECTS:
        _process_definitions.popitem(last=False)
    return definitions


def forget_process_definitions() -> None:
    """Drop this process's definitions (tests use it to act as a freshly started worker)."""
    _process_definitions.clear()


def build_flag_definitions(project_id: int, *, version: int = 0) -> ProjectFlagDefinitions:
    """Read the project's non-deleted flags, group types and referenced cohorts (four queries)."""
    # As PostHog: an encrypted remote-config flag is read only through `remote_config`, never by SDKs.
    flags = list(
        FeatureFlag.objects.filter(project_id=project_id, deleted=False)
        .exclude(is_remote_configuration=True, has_encrypted_payloads=True)
        .order_by("key")
    )
    with_experiment = flag_experiments().flag_ids_with_live_experiments([flag.id for flag in flags])
    stored_filters = {flag.key: flag.filters if isinstance(flag.filters, dict) else {} for flag in flags}
    definitions = tuple(
        flag_definition(flag, stored_filters, has_experiment=flag.id in with_experiment) for flag in flags
    )
    group_types = group_type_mapping(project_id)
    cohorts = referenced_cohorts(project_id, definitions)
    body = json.dumps(
        {"flags": list(definitions), "group_type_mapping": group_types, "cohorts": cohorts},
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    ).encode()
    etag = f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'
    return ProjectFlagDefinitions(version, definitions, group_types, cohorts, body, etag)


def flag_definition(
    flag: FeatureFlag, filters_by_key: dict[str, dict[str, Any]], *, has_experiment: bool
) -> dict[str, Any]:
    """One flag as PostHog's local-evaluation endpoint serves it (B.2).

    Every flag-dependency filter gets the `dependency_chain` SDKs need to evaluate it locally.
    """
    return {
        "id": flag.id,
        "team_id": flag.project_id,
        "name": flag.name,
        "key": flag.key,
        "filters": _with_dependency_chains(filters_by_key[flag.key], filters_by_key),
        "deleted": False,
        "active": flag.active,
        "ensure_experience_continuity": bool(flag.ensure_experience_continuity),
        "has_encrypted_payloads": bool(flag.has_encrypted_payloads),
        "version": flag.version,
        "evaluation_runtime": flag.evaluation_runtime or FeatureFlag.EvaluationRuntime.ALL,
        "evaluation_tags": [],
        "has_experiment": has_experiment,
    }


def _with_dependency_chains(
    filters: dict[str, Any], filters_by_key: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    conditions = filters.get("groups")
    if not isinstance(conditions, list) or not any(_has_flag_filter(condition) for condition in conditions):
        return filters
    flags_by_key = {key: {"key": key, "filters": value} for key, value in filters_by_key.items()}
    chained = []
    for condition in conditions:
        if _has_flag_filter(condition):
            properties = [
                {**prop, "dependency_chain": dependency_chain(str(prop.get("key")), flags_by_key)}
                if isinstance(prop, dict) and prop.get("type") == "flag"
                else prop
                for prop in condition["properties"]
            ]
            condition = {**condition, "properties": properties}
        chained.append(condition)
    return {**filters, "groups": chained}


def _has_flag_filter(condition: Any) -> bool:
    properties = condition.get("properties") if isinstance(condition, dict) else None
    return isinstance(properties, list) and any(
        isinstance(prop, dict) and prop.get("type") == "flag" for prop in properties
    )


def cohort_property_group(cohort: Cohort) -> dict[str, Any]:
    """A cohort's definition as an AND/OR property group; legacy `groups` become an OR of ANDs."""
    filters = cohort.filters if isinstance(cohort.filters, dict) else {}
    properties = filters.get("properties")
    if isinstance(properties, dict) and properties.get("type") in ("AND", "OR"):
        return properties
    legacy = cohort.groups if isinstance(cohort.groups, list) else []
    return {
        "type": "OR",
        "values": [
            {"type": "AND", "values": group.get("properties") or []}
            for group in legacy
            if isinstance(group, dict) and isinstance(group.get("properties") or [], list)
        ],
    }


def referenced_cohorts(project_id: int, definitions: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """Property groups of the live dynamic cohorts the flags reference, directly or through cohorts."""
    found: dict[str, Any] = {}
    pending: set[str] = set()
    for definition in definitions:
        pending |= _cohort_ids_in(definition["filters"].get("groups"))
    seen: set[str] = set()
    while pending:
        seen |= pending
        ids = [cohort_id for cohort_id in map(id_from_text, pending) if cohort_id is not None]
        pending = set()
        for cohort in Cohort.objects.filter(
            project_id=project_id, id__in=ids, deleted=False, is_static=False
        ):
            group = cohort_property_group(cohort)
            found[str(cohort.id)] = group
            pending |= _cohort_ids_in(group)
        pending -= seen
    return dict(sorted(found.items(), key=lambda item: int(item[0])))


def _cohort_ids_in(tree: Any) -> set[str]:
    """Ids of cohorts named by `type: cohort` filters anywhere in conditions or property groups."""
    ids: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("type") == "cohort" and "value" in node:
                ids.add(str(node.get("value")))
            stack.extend(value for key, value in node.items() if key in ("properties", "values"))
    return ids


# --- invalidation ---------------------------------------------------------------------------------


def flag_definitions_changed(project_id: int) -> None:
    """Call after changing a project's flags, cohorts or group types without model signals (bulk
    writes): bumps the version now, in the same transaction as the change, so both commit or neither
    does (an SDK can never keep an old ETag for a committed change). A reader that saw the old
    version before the commit may cache newer rows under it, which is harmless: everyone reads the
    new version after the commit. Saves and deletes are announced by `accounts.versions`."""
    project_data_changed(project_id, flag_definitions=True)
