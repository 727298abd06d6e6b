"""Hooks for tests: every /api/v1 request and answer of every sandbox in this process is
shown to the registered observers, e.g. to check answers against the OpenAPI contract or
to see the exact body a client sent.

A response observer is called as observer(method, path, status, body), a request
observer as observer(method, path, body): `path` is the contract's path (relative to
/api/v1, e.g. "/payment/diff"), `body` the JSON value (None when there is none).
Answers a fault makes malformed on purpose are not shown: they break the contract by
design.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ResponseObserver = Callable[[str, str, int, Any], None]
RequestObserver = Callable[[str, str, Any], None]

_response_observers: list[ResponseObserver] = []
_request_observers: list[RequestObserver] = []


def _register(registry: list[Any], observer: Any) -> Callable[[], None]:
    registry.append(observer)

    def remove() -> None:
        if observer in registry:
            registry.remove(observer)

    return remove


def add_response_observer(observer: ResponseObserver) -> Callable[[], None]:
    """Register `observer`; returns the function that removes it again."""
    return _register(_response_observers, observer)


def add_request_observer(observer: RequestObserver) -> Callable[[], None]:
    """Register `observer`; returns the function that removes it again."""
    return _register(_request_observers, observer)


def watching_requests() -> bool:
    return bool(_request_observers)


def notify_request(method: str, path: str, body: Any) -> None:
    for observer in list(_request_observers):
        observer(method, path, body)


def notify(method: str, path: str, status: int, body: Any) -> None:
    for observer in list(_response_observers):
        observer(method, path, status, body)
