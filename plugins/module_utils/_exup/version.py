# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Firmware version ordering.

Firmware versions are not PEP 440 ("R1.5a", "2.10.3", "1.02", "U30 v2.4"), so
``packaging.version`` does not fit. A version is split into runs of digits and
runs of letters; digits compare as numbers, letters case-insensitively, and a
number sorts after a word at the same position ("1.0" > "1.0beta" is not
assumed: "1.0a" > "1.0", the common firmware convention of letter revisions).
"""

from __future__ import annotations

import functools
import re

_TOKEN = re.compile(r'\d+|[A-Za-z]+')


@functools.lru_cache(maxsize=65536)  # pure; generation management asks for the same few versions again and again
def version_key(version: str | None) -> tuple[tuple[int, int, str], ...]:
    """Return a sort key for a firmware version string."""
    key: list[tuple[int, int, str]] = []
    for token in _TOKEN.findall(version or ''):
        if token.isdigit():
            key.append((1, int(token), ''))
        else:
            key.append((0, 0, token.lower()))
    return tuple(key)


def compare_versions(left: str | None, right: str | None) -> int:
    """Return -1, 0 or 1 as ``left`` is older than, equal to or newer than ``right``."""
    left_key, right_key = version_key(left), version_key(right)
    return (left_key > right_key) - (left_key < right_key)
