"""The ASGI entry point: ``uvicorn asgi:app``."""

from app import create_asgi_app
from app.config import settings_or_exit

app = create_asgi_app(settings_or_exit())
