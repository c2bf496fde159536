"""Stop strings: cut a finished text at the first one, or hold back a stream's text until it is
clear that no stop string is starting."""

from __future__ import annotations

from collections.abc import Iterable


def cut_at_stop(text: str, stop: Iterable[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string (dropped), and whether one was found."""
    positions = [index for marker in stop if marker and (index := text.find(marker)) >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


class StopFilter:
    """Applies stop strings to streamed text: what might be the start of a stop string is held
    back until the next piece shows it is not, so the caller never sees part of a marker."""

    def __init__(self, stop: Iterable[str]) -> None:
        self._stop = [marker for marker in stop if marker]
        self._text = ""
        self._emitted = 0
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The newly safe text after ``piece`` (may be empty); sets ``stopped`` at a marker."""
        if self.stopped:
            return ""
        self._text += piece
        cut, self.stopped = cut_at_stop(self._text, self._stop)
        safe = len(cut) if self.stopped else len(cut) - self._held_back(cut)
        if safe <= self._emitted:
            return ""
        out = cut[self._emitted : safe]
        self._emitted = safe
        return out

    def flush(self) -> str:
        """What was held back, once the stream has ended without a marker."""
        if self.stopped:
            return ""
        out = self._text[self._emitted :]
        self._emitted = len(self._text)
        return out

    def _held_back(self, text: str) -> int:
        longest = 0
        for marker in self._stop:
            for size in range(min(len(marker) - 1, len(text)), 0, -1):
                if text.endswith(marker[:size]):
                    longest = max(longest, size)
                    break
        return longest
