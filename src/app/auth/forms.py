"""The sign-in and registration forms (CSRF-protected by Flask-WTF)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Regexp

from ..api.schemas import PASSWORD_MAX, PASSWORD_MIN, USERNAME_PATTERN
from ..models import EMAIL_MAX, USERNAME_MAX


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=USERNAME_MAX)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=PASSWORD_MAX)])
    submit = SubmitField("Sign in")


class RegistrationForm(FlaskForm):
    username = StringField(
        "Username",
        validators=[
            DataRequired(),
            Length(min=3, max=USERNAME_MAX),
            Regexp(USERNAME_PATTERN, message="Use letters, digits and underscores only."),
        ],
    )
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=EMAIL_MAX)])
    password = PasswordField(
        "Password",
        validators=[
            DataRequired(),
            Length(min=PASSWORD_MIN, max=PASSWORD_MAX),
        ],
    )
    password_again = PasswordField(
        "Repeat password",
        validators=[
            DataRequired(),
            EqualTo("password", message="The passwords differ."),
        ],
    )
    submit = SubmitField("Register")
