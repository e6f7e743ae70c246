"""The view replaced by one that returns a constant document (no @operation, no ETag)."""

from _served import flask_app, served
from flask_greenlet import Response

BODY = b'{"id": 7, "body": "post 7"}'


async def constant(post_id):
    return Response(BODY, mimetype="application/json")


flask_app.view_functions["api.get_post"] = constant
app = served
