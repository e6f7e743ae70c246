"""No before-, after- or teardown-request hooks at all."""

from _served import flask_app, served

for hooks in (
    flask_app.before_request_funcs,
    flask_app.after_request_funcs,
    flask_app.teardown_request_funcs,
    flask_app.url_value_preprocessors,
):
    hooks.clear()
app = served
