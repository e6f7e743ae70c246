"""FastAPI alone: the same constant document."""

from fastapi import FastAPI, Response

app = FastAPI()
BODY = b'{"id": 7, "body": "post 7"}'


@app.get("/api/posts/{post_id}")
async def constant(post_id: int):
    return Response(BODY, media_type="application/json")
