"""The post form."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length

from ..auth.forms import no_nul
from ..models import POST_BODY_MAX


class PostForm(FlaskForm):
    body = TextAreaField(
        "What's new?",
        filters=[lambda s: s.strip() if s else s],
        validators=[DataRequired(), Length(max=POST_BODY_MAX), no_nul],
    )
    submit = SubmitField("Post")
