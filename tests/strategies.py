"""Hypothesis strategies the property tests share."""

from __future__ import annotations

from hypothesis import strategies as st

# Every code point but the surrogates, as `st.text()` draws by default, but by category: the
# default (codec "utf-8") first runs every code point through the codec, 4-5 s of CPU in a
# fresh checkout (before .hypothesis/ caches it), paid again by each xdist worker.
CHARACTERS = st.characters(exclude_categories=("Cs",))


def any_text(max_size: int | None = None) -> st.SearchStrategy[str]:
    return st.text(CHARACTERS, max_size=max_size)
