"""All of a project's flags evaluated together for one user, as `/flags` answers them when no keys are
named: the work flags share is done once per request, the rest is one hash per flag.

Flags evaluated one by one repeat what many of them share: the same property filter (`plan` is
`pro`) tested once per flag, the same conditions walked once per flag. So, once per definitions
version, compiled flags are grouped by what they test (each condition's property filters, and the
holdout); rollouts, variants and payloads may differ within a group. A request then

- runs each distinct property test once;
- per group, finds which conditions pass their tests (the same for every flag of the group: its
  *pattern*) and whether the group's holdout holds the user out (one holdout hash per request);
- per group and pattern, reads each flag's decision (`CompiledFlag.decision`: rollout thresholds
  and the outcome between them), built the first time the pattern is seen and kept with the
  version, since it depends on the pattern only, never on the user;
- hashes the user once per flag and places the digest among that flag's thresholds.

A flag alone in its group is evaluated by `CompiledFlag.evaluate_compiled` (a pattern costs more than
it saves there), one the compiler does not take by the general evaluator. The answers are exactly
those of evaluating each flag alone (a differential test holds them together).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from hashlib import sha1

from flags.bucketing import holdout_hash, in_holdout
from flags.compiled import CompiledFlag, Outcome, VariantPick
from flags.evaluation import EvaluationContext, FlagResult, evaluate_flag

# Decision tables one group keeps; a pattern seen beyond that is decided without being kept, so
# groups with many conditions cannot grow without bound on varied traffic.
MAX_PATTERNS_PER_GROUP = 32

# The pattern of a group whose holdout holds the user out: no condition is looked at.
HELD_OUT = None


# One flag decided for one pattern: its rollout hash prefix, then ascending thresholds and outcomes
# as `CompiledFlag.decision` gives them.
Decision = tuple[bytes, tuple[bytes, ...], tuple[Outcome, ...]]


@dataclass(frozen=True, slots=True)
class DecisionTable:
    """Each flag of a group decided for one pattern, in one of two forms."""

    # Each flag's `Decision`; empty when `one_step_entries` holds them.
    entries: tuple[Decision, ...]
    # When every flag has exactly one threshold (one rollout decides, the common case), each
    # flag's prefix, that threshold and its two outcomes: the digest is compared, not bisected.
    one_step_entries: tuple[tuple[bytes, bytes, tuple[Outcome, ...]], ...] | None
    # Whether some outcome is a `VariantPick`, needing the user's variant hash.
    picks_variants: bool

    @classmethod
    def of(cls, decisions: tuple[Decision, ...]) -> DecisionTable:
        picks = any(outcome.__class__ is VariantPick for _, _, outcomes in decisions for outcome in outcomes)
        if all(len(thresholds) == 1 for _, thresholds, _ in decisions):
            one_step = tuple((prefix, thresholds[0], outcomes) for prefix, thresholds, outcomes in decisions)
            return cls((), one_step, picks)
        return cls(decisions, None, picks)

    def results(self, identifier: str, encoded_identifier: bytes) -> list[FlagResult]:
        if self.one_step_entries is not None:
            outcomes = [
                outcomes[sha1(prefix + encoded_identifier).digest() >= threshold]
                for prefix, threshold, outcomes in self.one_step_entries
            ]
        else:
            outcomes = [
                outcomes[bisect_right(thresholds, sha1(prefix + encoded_identifier).digest())]
                if thresholds
                else outcomes[0]
                for prefix, thresholds, outcomes in self.entries
            ]
        if self.picks_variants:
            return [
                outcome.result(identifier) if outcome.__class__ is VariantPick else outcome
                for outcome in outcomes
            ]
        return outcomes


@dataclass(slots=True)
class FlagGroup:
    """Active compiled flags whose conditions test the same property filters, in the same order,
    and that share their holdout."""

    flags: tuple[CompiledFlag, ...]
    # Per condition, the indexes of its property tests in `CompiledFlagSet.tests`.
    condition_tests: tuple[tuple[int, ...], ...]
    # The exclusion percentage of the flags' holdout, None without one.
    holdout_percentage: float | None
    tables: dict[tuple[bool, ...] | None, DecisionTable] = field(default_factory=dict)

    def results(
        self, passes: Sequence[bool], holdout_hashed: float, identifier: str, encoded_identifier: bytes
    ) -> list[FlagResult]:
        """The results of the group's flags, in order, for the user whose holdout hash is
        `holdout_hashed` and for whom the distinct property tests gave `passes`."""
        if self.holdout_percentage is not None and in_holdout(self.holdout_percentage, holdout_hashed):
            pattern = HELD_OUT
        else:
            pattern = tuple([all(passes[test] for test in tests) for tests in self.condition_tests])
        table = self.tables.get(pattern)
        if table is None:
            table = self._table(pattern)
            if len(self.tables) < MAX_PATTERNS_PER_GROUP:
                self.tables[pattern] = table
        return table.results(identifier, encoded_identifier)

    def _table(self, pattern: tuple[bool, ...] | None) -> DecisionTable:
        if pattern is HELD_OUT:
            return DecisionTable.of(tuple((b"", (), (flag.held_out_result(),)) for flag in self.flags))
        return DecisionTable.of(tuple((flag.hash_prefix, *flag.decision(pattern)) for flag in self.flags))


class CompiledFlagSet:
    """A definitions version's compiled flags (in key order), arranged for `evaluate`."""

    def __init__(self, flags: Sequence[CompiledFlag]) -> None:
        test_indexes: dict[str, int] = {}
        tests = []
        members: dict[tuple, list[CompiledFlag]] = {}
        disabled, general = [], []
        for flag in flags:
            if not flag.compiled:
                general.append(flag)
            elif not flag.active:
                disabled.append(flag)
            else:
                shape = (
                    tuple(condition.test_identities for condition in flag.conditions),
                    flag.holdout[1] if flag.holdout is not None else None,
                )
                members.setdefault(shape, []).append(flag)
        self.groups: list[FlagGroup] = []
        singles: list[CompiledFlag] = []
        for (condition_identities, holdout_percentage), grouped in members.items():
            if len(grouped) == 1:
                singles.extend(grouped)
                continue
            for identities, condition in zip(condition_identities, grouped[0].conditions, strict=True):
                for identity, test in zip(identities, condition.property_tests, strict=True):
                    if identity not in test_indexes:
                        test_indexes[identity] = len(tests)
                        tests.append(test)
            condition_tests = tuple(
                tuple(test_indexes[identity] for identity in identities)
                for identities in condition_identities
            )
            self.groups.append(FlagGroup(tuple(grouped), condition_tests, holdout_percentage))
        self.tests = tuple(tests)
        self.disabled_results = [flag.disabled_result() for flag in disabled]
        self.singles = tuple(singles)
        self.general = tuple(general)
        self.uses_holdouts = any(group.holdout_percentage is not None for group in self.groups)
        # Flags in the order `evaluate` produces them, and where each key-ordered flag is in it.
        compiled = [flag for group in self.groups for flag in group.flags] + disabled + singles
        self.compiled_keys = tuple(flag.key for flag in compiled)
        position = {flag.key: index for index, flag in enumerate(compiled + general)}
        self.order = tuple(position[flag.key] for flag in flags)
        self.keys = tuple(flag.key for flag in flags)

    def evaluate(self, context: EvaluationContext) -> dict[str, FlagResult]:
        """Every flag's result for the user `context` describes, by key in key order; `context`
        must be fresh (nothing evaluated with it yet)."""
        identifier = context.distinct_id
        encoded_identifier = identifier.encode()
        properties, now = context.person_properties, context.now
        passes = [test(properties, now) for test in self.tests]
        holdout_hashed = holdout_hash(identifier) if self.uses_holdouts else 0.0
        produced: list[FlagResult] = []
        for group in self.groups:
            produced += group.results(passes, holdout_hashed, identifier, encoded_identifier)
        produced += self.disabled_results
        produced += [flag.evaluate_compiled(context, encoded_identifier) for flag in self.singles]
        if self.general:
            # Flag dependencies of the general flags find the compiled flags' results here.
            context.memo.update(zip(self.compiled_keys, produced, strict=True))
            produced += [evaluate_flag(flag.definition, context) for flag in self.general]
        return dict(zip(self.keys, [produced[index] for index in self.order], strict=True))
