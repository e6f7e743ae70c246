"""flask-greenlet and Flask alone: one async view that returns a constant document."""

from flask_greenlet import ASGIApp, AsyncFlask, Response

flask_app = AsyncFlask(__name__)
BODY = b'{"id": 7, "body": "post 7"}'


@flask_app.get("/api/posts/<int:post_id>")
async def constant(post_id):
    return Response(BODY, mimetype="application/json")


app = ASGIApp(flask_app)
