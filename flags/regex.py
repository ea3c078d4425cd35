"""The regular expressions of flag conditions (`regex` / `not_regex`), matched in linear time.

Patterns come from anyone who can edit a flag and the matched values from anyone holding the public
project token, so a backtracking engine (Python's `re`) would let one request hold a worker for
minutes. RE2 guarantees time linear in the value's length, as the Rust `regex` crate behind
PostHog's flags service does. Its syntax is Perl's without backreferences and lookaround; a pattern
it cannot compile is refused when a flag is saved and never matches at evaluation.
"""

import functools

import re2

# Enough for every pattern a flag needs; a pattern whose program exceeds it fails to compile instead
# of taking memory from the worker.
PATTERN_MAX_MEMORY_BYTES = 1 << 20


@functools.lru_cache(maxsize=512)
def _compile(pattern: str) -> re2._Regexp | None:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = PATTERN_MAX_MEMORY_BYTES
    try:
        return re2.compile(pattern, options)
    except (re2.error, UnicodeEncodeError):
        return None


def flag_regex_search(pattern: str, text: str) -> bool | None:
    """Whether `pattern` occurs anywhere in `text` (PostHog's unanchored search), or None when RE2
    cannot compile the pattern."""
    compiled = _compile(pattern)
    if compiled is None:
        return None
    try:
        return compiled.search(text) is not None
    except UnicodeEncodeError:
        # RE2 matches UTF-8; a lone surrogate (valid in JSON text) cannot be encoded, so it is
        # matched as the replacement character.
        return compiled.search(text.encode("utf-8", "replace").decode("utf-8")) is not None


def flag_regex_is_valid(pattern: str) -> bool:
    """Whether a flag condition may store `pattern`."""
    return _compile(pattern) is not None
