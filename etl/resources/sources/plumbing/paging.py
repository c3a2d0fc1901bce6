"""Paging for the cloud vendor sources: one loop for every way an API hands out a list.

Vendors page in four ways, and all of them are a cursor that the previous page yields:

- a page number and a page count (Genesys `pageNumber`/`pageCount`, Vonage `page`/`meta`);
- a `Link: <...>; rel="next"` header (UJET, RFC 8288), whose URL is opaque and used as is;
- a next link in the body (Talkdesk `_links.next.href`);
- a continuation token (Amazon Connect `NextToken`).

`paginate` runs that loop once for all of them and guards what goes wrong in real life: a
server that hands out the same cursor again (an endless loop) and a list that never ends
(`max_pages`). Both are a `SourceError` naming the integration and the request, never the
token itself (continuation tokens can be long and carry request state).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Hashable, Iterator
from typing import TypeVar

from etl.resources.sources.base import SourceError

P = TypeVar("P")
C = TypeVar("C", bound=Hashable)

MAX_PAGES = 100_000

# One link-value of a Link header: <uri-reference> followed by ;-separated parameters.
_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_PARAM = re.compile(r';\s*([^=;,\s]+)\s*=\s*(?:"([^"]*)"|([^;,\s]*))')


def paginate(
    fetch: Callable[[C | None], P],
    next_cursor: Callable[[P, C | None], C | None],
    *,
    where: str,
    max_pages: int = MAX_PAGES,
) -> Iterator[P]:
    """Every page: `fetch(None)` first, then `fetch(cursor)` while `next_cursor(page, cursor)`
    gives one. `where` names the integration and request for the error messages."""
    cursor: C | None = None
    seen: set[C] = set()
    for _ in range(max_pages):
        page = fetch(cursor)
        yield page
        following = next_cursor(page, cursor)
        if following is None:
            return
        if following in seen:
            raise SourceError(
                f"{where}: the server handed out a next-page cursor it had already given "
                f"(after {len(seen) + 1} pages); stopped instead of looping"
            )
        seen.add(following)
        cursor = following
    raise SourceError(f"{where}: more than {max_pages} pages; stopped (narrow the window)")


def numbered_pages(
    fetch: Callable[[int], P],
    last: Callable[[P, int], bool],
    *,
    where: str,
    first: int = 1,
    max_pages: int = MAX_PAGES,
) -> Iterator[P]:
    """Pages `first`, `first + 1`, ... until `last(page, number)` says that was the last."""

    def following(page: P, number: int | None) -> int | None:
        current = first if number is None else number
        return None if last(page, current) else current + 1

    return paginate(
        lambda number: fetch(first if number is None else number),
        following,
        where=where,
        max_pages=max_pages,
    )


def link_targets(header: str | None, base: str = "") -> dict[str, str]:
    """rel -> absolute URL of each link in a `Link` header (RFC 8288); later duplicates
    of a rel are ignored, as the RFC allows."""
    found: dict[str, str] = {}
    for target, params in _LINK.findall(header or ""):
        for name, quoted, bare in _PARAM.findall(params):
            if name.lower() != "rel":
                continue
            for rel in (quoted or bare).lower().split():
                found.setdefault(rel, urllib.parse.urljoin(base, target.strip()))
    return found


def next_link(header: str | None, base: str = "") -> str | None:
    """The `rel="next"` URL of a `Link` header, or None on the last page."""
    return link_targets(header, base).get("next")
