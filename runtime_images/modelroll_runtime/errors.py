"""Request errors carry their HTTP status; the app turns them into {"error": "..."}."""

from __future__ import annotations


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> RequestError:
    return RequestError(400, message)
