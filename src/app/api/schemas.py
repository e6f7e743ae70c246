"""Request and response schemas of the API. They validate requests and make the OpenAPI doc."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)

from ..models import (
    EMAIL_MAX,
    MAX_ID,
    POST_BODY_MAX,
    USERNAME_MAX,
    USERNAME_MIN,
    USERNAME_PATTERN,
)
from ..passwords import PASSWORD_MAX, PASSWORD_MIN, password_problem


def _acceptable_password(value: str) -> str:
    problem = password_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _no_nul(value: str) -> str:
    # PostgreSQL refuses NUL in text where SQLite stores it: refuse it on both.
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


Username = Annotated[
    str,
    StringConstraints(min_length=USERNAME_MIN, max_length=USERNAME_MAX, pattern=USERNAME_PATTERN),
]
# Kept exactly as typed: no stripping, any Unicode; the rule is passwords.password_problem.
Password = Annotated[
    str,
    StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX, strip_whitespace=False),
    AfterValidator(_acceptable_password),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UserCreate(_Request):
    username: Username
    email: Annotated[EmailStr, Field(max_length=EMAIL_MAX)]
    password: Password

    @field_validator("email")
    @classmethod
    def _lowercase_email(cls, value: str) -> str:
        return _no_nul(value).lower()


class PasswordChange(_Request):
    current_password: Annotated[
        str, StringConstraints(max_length=PASSWORD_MAX, strip_whitespace=False)
    ]
    new_password: Password


class PostCreate(_Request):
    body: Annotated[
        str, StringConstraints(min_length=1, max_length=POST_BODY_MAX), AfterValidator(_no_nul)
    ]


def encode_cursor(post_id: int) -> str:
    return base64.urlsafe_b64encode(str(post_id).encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    try:
        post_id = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise ValueError("not a cursor this API returned") from None
    if not 1 <= post_id <= MAX_ID:
        raise ValueError("not a cursor this API returned")
    return post_id


class PageQuery(BaseModel):
    """``?limit=N&cursor=C``: page size, and where the previous page ended."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=32)

    @field_validator("cursor")
    @classmethod
    def _check_cursor(cls, value: str | None) -> str | None:
        if value is not None:
            decode_cursor(value)
        return value

    @property
    def before(self) -> int | None:
        return decode_cursor(self.cursor) if self.cursor is not None else None


# Responses are plain dataclasses: pydantic-core serialises them to JSON in one pass, without
# validating again what the database has just returned.


@dataclass(frozen=True, slots=True)
class UserPublic:
    username: str
    created_at: datetime
    post_count: int


@dataclass(frozen=True, slots=True)
class TokenIssued:
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PostPublic:
    id: int
    body: str
    author: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PostPage:
    items: list[PostPublic]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ProblemField:
    in_: Annotated[str, Field(alias="in")]
    field: str | None
    message: str
    type: str


@dataclass(frozen=True, slots=True)
class Problem:
    """An RFC 9457 problem document."""

    title: str
    status: int
    type: str = "about:blank"
    detail: str | None = None
    errors: list[ProblemField] | None = None
