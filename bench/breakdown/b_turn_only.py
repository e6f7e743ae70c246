"""The app as served with a real connection turn, but no statement: the post from memory."""

import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import app.api.posts as api_posts
from app import create_asgi_app
from app.config import Settings

ROW = (7, "post 7", "writer", datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), None)


async def _find_post_in_memory(conn, post_id):
    return ROW


api_posts.find_post = _find_post_in_memory
app = create_asgi_app(Settings())
