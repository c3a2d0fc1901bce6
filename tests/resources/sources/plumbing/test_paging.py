"""The paging loop and Link headers, directly."""

from __future__ import annotations

import pytest

from etl.resources.sources.base import SourceError
from etl.resources.sources.plumbing.paging import (
    link_targets,
    next_link,
    numbered_pages,
    paginate,
)


def test_link_header_targets_per_rel():
    header = (
        '<https://acme.ujet.co/manager/api/v1/calls?page=3&per=20>; rel="next", '
        "</manager/api/v1/calls?page=1&per=20>; rel=first, "
        '<https://acme.ujet.co/x?page=9>; title="last page"; rel="last prev"'
    )
    targets = link_targets(header, "https://acme.ujet.co/manager/api/v1/calls?page=2")
    assert targets == {
        "next": "https://acme.ujet.co/manager/api/v1/calls?page=3&per=20",
        "first": "https://acme.ujet.co/manager/api/v1/calls?page=1&per=20",
        "last": "https://acme.ujet.co/x?page=9",
        "prev": "https://acme.ujet.co/x?page=9",
    }
    assert next_link('<https://a/b?page=1>; rel="first"') is None
    assert next_link(None) is None


def test_token_paging_reads_every_page():
    pages = {None: ([1, 2], "t1"), "t1": ([3], "t2"), "t2": ([4], None)}
    got = list(paginate(lambda t: pages[t], lambda page, _t: page[1], where="test"))
    assert [x for items, _ in got for x in items] == [1, 2, 3, 4]


def test_a_repeated_cursor_stops_instead_of_looping():
    pages = {None: ("a",), "a": ("b",), "b": ("a",)}
    with pytest.raises(SourceError) as caught:
        list(paginate(lambda t: pages[t], lambda page, _t: page[0], where="integration 'x': API"))
    assert "integration 'x': API" in str(caught.value)
    assert "already given" in str(caught.value)


def test_a_list_that_never_ends_is_stopped():
    with pytest.raises(SourceError, match="more than 5 pages"):
        list(numbered_pages(lambda n: n, lambda _page, _n: False, where="w", max_pages=5))


def test_numbered_pages_start_at_first_and_stop_at_last():
    asked = []
    pages = numbered_pages(lambda n: asked.append(n) or n, lambda _p, n: n >= 3, where="w", first=1)
    assert list(pages) == [1, 2, 3]
    assert asked == [1, 2, 3]
