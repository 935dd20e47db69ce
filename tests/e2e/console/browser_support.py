"""Helpers for the console's browser tests: sign in as a person would, find unnamed controls."""

from __future__ import annotations

from typing import Any


def sign_in(page: Any, base_url: str, api_key: str, next_path: str = "/console/") -> None:
    """Sign in through the form, as a person would (label, keyboard, button)."""
    page.goto(f"{base_url}{next_path}")
    assert "/console/login" in page.url, page.url
    page.get_by_label("API key").fill(api_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/console/login" not in page.url, page.content()


def unlabelled_controls(page: Any) -> list[str]:
    """Form controls a screen reader could not name (no label, aria-label or labelledby)."""
    result: list[str] = page.evaluate(
        """() => Array.from(document.querySelectorAll('input, select, textarea'))
            .filter(e => e.type !== 'hidden')
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                         && !e.getAttribute('aria-labelledby'))
            .map(e => e.outerHTML)"""
    )
    return result
