"""Our app as cost.py serves it, with the post's read answered from memory: what is left is
everything around the database (the ASGI layers, the bridge, Flask, the hooks, the view)."""

import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from app import create_asgi_app
from app.config import Settings
from app.database import Database

ROW = (7, "post 7", "writer", datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), None)


async def _read_from_memory(self, query, *args, **kwargs):
    return ROW


Database.read = _read_from_memory
served = create_asgi_app(Settings())
flask_app = served.flask_app
