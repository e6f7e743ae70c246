"""Request and response schemas of the API. They validate requests and make the OpenAPI doc."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from ..models import (
    EMAIL_MAX,
    MAX_ID,
    POST_BODY_MAX,
    TOKEN_NAME_MAX,
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


# Not blank and no NUL: what _not_blank and _no_nul enforce, as the OpenAPI document says it.
POST_BODY_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("A post needs more than spaces")
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
    Field(
        description=(
            "Any characters, kept exactly as typed. Refused with 422 when blank or one of the "
            "10,000 most common passwords, which no schema can list."
        )
    ),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")  # strings are taken as sent: what the schema says


def _email_address(value: str) -> str:
    # Checked for syntax only (no DNS lookups), and stored lowercased.
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(str(error)) from None
    return checked.normalized.lower()


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


# Mail is never delivered to special-use domains (RFC 6761): the schema says so, as the check does.
_SPECIAL_USE_DOMAIN = "[.@](" + "|".join(map(_any_case, SPECIAL_USE_DOMAIN_NAMES)) + ")$"
EmailAddress = Annotated[
    str,
    StringConstraints(max_length=EMAIL_MAX),
    AfterValidator(_email_address),
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "maxLength": EMAIL_MAX,
            "not": {"pattern": _SPECIAL_USE_DOMAIN},
        }
    ),
]


class UserCreate(_Request):
    username: Username
    email: EmailAddress
    password: Password


class PasswordChange(_Request):
    current_password: Annotated[
        str, StringConstraints(max_length=PASSWORD_MAX, strip_whitespace=False)
    ]
    new_password: Password


class PostCreate(_Request):
    # Kept exactly as sent; the pattern tells clients what the validators enforce.
    body: Annotated[
        str,
        StringConstraints(min_length=1, max_length=POST_BODY_MAX, strip_whitespace=False),
        AfterValidator(_no_nul),
        AfterValidator(_not_blank),
        Field(json_schema_extra={"pattern": POST_BODY_PATTERN}),
    ]


class TokenCreate(_Request):
    """What a client may say of the token it asks for: a name to tell its tokens apart."""

    name: (
        Annotated[
            str,
            StringConstraints(
                min_length=1, max_length=TOKEN_NAME_MAX, pattern=r"^[^\x00-\x1f\x7f]+$"
            ),
            Field(description="A label, such as the device or script that holds the token."),
        ]
        | None
    ) = None


class PostEdit(PostCreate):
    """A post's new body, under the same rules as a new post's."""


# A cursor is a post id in base 36, and every well-formed cursor is a position: one past any id
# reads from the newest post, 0 reads nothing. So the schema's pattern tells the whole truth.
CURSOR_PATTERN = r"^[0-9a-z]{1,7}$"


def encode_cursor(post_id: int) -> str:
    digits = ""
    while post_id:
        post_id, digit = divmod(post_id, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return digits or "0"


def decode_cursor(cursor: str) -> int | None:
    """The id that posts on the next page are older than; None, past every id, reads from
    the newest post."""
    post_id = int(cursor, 36)
    return post_id if post_id <= MAX_ID else None


class PageQuery(BaseModel):
    """``?limit=N&cursor=C``: page size, and where the previous page ended."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, pattern=CURSOR_PATTERN)

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
class UserSelf:
    """The token's own user: the public profile and the email address."""

    username: str
    email: str
    created_at: datetime
    post_count: int


@dataclass(frozen=True, slots=True)
class TokenIssued:
    """A new token: the secret is shown this once; only its digest is kept."""

    id: int
    token: str
    name: str | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """One of the caller's live tokens, never its secret. ``last_used_at`` is up to a minute
    late; ``current`` marks the token this request carries."""

    id: int
    name: str | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime
    current: bool


@dataclass(frozen=True, slots=True)
class TokenList:
    items: list[TokenInfo]


@dataclass(frozen=True, slots=True)
class PostPublic:
    id: int
    body: str
    author: str
    created_at: datetime
    edited_at: datetime | None  # None until its author edits it


class EventStream:
    """A ``text/event-stream`` response (Server-Sent Events), documented, never serialised."""


@dataclass(frozen=True, slots=True)
class PostPage:
    items: list[PostPublic]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ProblemField:
    in_: Annotated[str, Field(alias="in")]
    field: str  # a dotted path into the body or the query; "" for the body as a whole
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
    request_id: str | None = None  # the X-Request-ID of the request that failed
