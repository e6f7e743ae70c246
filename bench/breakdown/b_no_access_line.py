"""The access line not written."""

from _served import served

served._app.access_log = False
app = served
