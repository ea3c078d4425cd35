"""How a text (a URL segment, a reference stored in JSON) names a row: by its positive bigint id,
written in ASCII digits."""

# Primary keys are PostgreSQL bigints.
MAX_DATABASE_ID = 2**63
MAX_DATABASE_ID_DIGITS = len(str(MAX_DATABASE_ID))


def id_from_text(raw: object) -> int | None:
    """The id `raw` names, or None. Only ASCII digits count: `isdigit` alone accepts superscripts,
    which `int` refuses, and other scripts' digits, which `int` reads as another id; and a string
    longer than any bigint is refused before `int` reads it (it raises beyond 4 300 digits)."""
    if (
        not isinstance(raw, str)
        or not raw.isascii()
        or not raw.isdigit()
        or len(raw) > MAX_DATABASE_ID_DIGITS
    ):
        return None
    value = int(raw)
    return value if 0 < value < MAX_DATABASE_ID else None
