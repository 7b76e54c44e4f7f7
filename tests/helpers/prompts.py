"""Scripted answers to prompts."""

from __future__ import annotations

from io import StringIO

import pytest


class Prompts:
    """Answers ``input()`` with a scripted reply and keeps the questions asked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.questions: list[str] = []
        self._monkeypatch = monkeypatch

    def reply(self, text: str) -> None:
        def fake_input(prompt: str) -> str:
            self.questions.append(prompt)
            return text

        self._monkeypatch.setattr("builtins.input", fake_input)


class Terminal(StringIO):
    """A stdin that says it is a terminal, so commands ask before they act."""

    def isatty(self) -> bool:
        return True
