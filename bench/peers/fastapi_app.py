"""FastAPI + SQLAlchemy AsyncSession (ORM) on asyncpg, pydantic response models.

Serve: ``uvicorn fastapi_app:app --app-dir bench/peers`` with DATABASE_URL set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

from contract import (
    POST_BODY_MAX,
    clean_body,
    database_url,
    decode_cursor,
    encode_cursor,
    pool_size,
)
from contract import token_digest as digest
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from models import Post, Token, User
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine


class PostOut(BaseModel):
    id: int
    body: str
    author: str
    created_at: datetime
    edited_at: datetime | None


class PostPage(BaseModel):
    items: list[PostOut]
    next_cursor: str | None


def _kept_as_sent(body: str) -> str:
    if clean_body(body) is None:
        raise ValueError("blank, or with a NUL")
    return body


class PostIn(BaseModel):
    body: Annotated[
        str, Field(min_length=1, max_length=POST_BODY_MAX), AfterValidator(_kept_as_sent)
    ]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = create_async_engine(database_url("asyncpg"), pool_size=pool_size(), max_overflow=0)
    app.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
bearer = HTTPBearer(auto_error=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def current_user(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    if credentials is None:
        raise HTTPException(401, "A bearer token is required.")
    user = await session.scalar(
        select(User)
        .join(Token, Token.user_id == User.id)
        .where(Token.token_hash == digest(credentials.credentials), Token.expires_at > func.now())
    )
    if user is None:
        raise HTTPException(401, "The bearer token is invalid or has expired.")
    return user


def post_out(post: Post, author: str) -> PostOut:
    return PostOut(
        id=post.id,
        body=post.body,
        author=author,
        created_at=post.created_at,
        edited_at=post.edited_at,
    )


def newest_posts():  # type: ignore[no-untyped-def]
    return (
        select(Post, User.username).join(User, Post.author_id == User.id).order_by(Post.id.desc())
    )


@app.get("/api/posts", response_model=PostPage)
async def list_posts(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> PostPage:
    statement = newest_posts().limit(limit + 1)
    if cursor is not None:
        try:
            before = decode_cursor(cursor)
        except ValueError:
            raise HTTPException(422, "Not a cursor this API returned.") from None
        if before is not None:
            statement = statement.where(Post.id < before)
    rows = (await session.execute(statement)).all()
    items = [post_out(post, author) for post, author in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return PostPage(items=items, next_cursor=next_cursor)


@app.post("/api/posts", response_model=PostOut, status_code=201)
async def create_post(
    payload: PostIn,
    response: Response,
    session: SessionDep,
    user: Annotated[User, Depends(current_user)],
) -> PostOut:
    post = Post(body=payload.body, author_id=user.id)
    session.add(post)
    await session.commit()
    response.headers["Location"] = f"/api/posts/{post.id}"
    return post_out(post, user.username)


@app.get("/api/posts/{post_id}", response_model=PostOut)
async def get_post(post_id: int, session: SessionDep) -> PostOut:
    row = (await session.execute(newest_posts().where(Post.id == post_id))).first()
    if row is None:
        raise HTTPException(404, "No post has that id.")
    return post_out(*row)
