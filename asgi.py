"""The ASGI entry point: ``uvicorn asgi:app``."""

from app import create_asgi_app

app = create_asgi_app()
