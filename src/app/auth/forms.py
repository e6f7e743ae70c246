"""The account forms (CSRF-protected by Flask-WTF). Field rules are the models' and passwords'."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, EqualTo, InputRequired, Length, Regexp
from wtforms.validators import ValidationError as FieldError

from ..models import EMAIL_MAX, USERNAME_MAX, USERNAME_MIN, USERNAME_PATTERN
from ..passwords import PASSWORD_MAX, password_problem


def no_nul(form: Any, field: Any) -> None:
    """NUL never belongs in text; PostgreSQL would refuse it where SQLite stores it."""
    if field.data and "\x00" in field.data:
        raise FieldError("That contains a character that is not allowed.")


def acceptable_password(form: Any, field: Any) -> None:
    problem = password_problem(field.data or "")
    if problem:
        raise FieldError(problem)


def new_password_field(label: str) -> PasswordField:
    # InputRequired, not DataRequired: a password is kept exactly as typed, spaces and all.
    return PasswordField(label, validators=[InputRequired(), no_nul, acceptable_password])


class LoginForm(FlaskForm):
    username = StringField(
        "Username", validators=[DataRequired(), Length(max=USERNAME_MAX), no_nul]
    )
    password = PasswordField(
        "Password", validators=[InputRequired(), Length(max=PASSWORD_MAX), no_nul]
    )
    remember = BooleanField("Keep me signed in on this device for 30 days")
    submit = SubmitField("Sign in")


class RegistrationForm(FlaskForm):
    username = StringField(
        "Username",
        validators=[
            DataRequired(),
            Length(min=USERNAME_MIN, max=USERNAME_MAX),
            Regexp(USERNAME_PATTERN, message="Use letters, digits and underscores only."),
        ],
    )
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=EMAIL_MAX), no_nul])
    password = new_password_field("Password")
    password_again = PasswordField(
        "Repeat password",
        validators=[InputRequired(), EqualTo("password", message="The passwords differ.")],
    )
    submit = SubmitField("Register")


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[InputRequired(), Length(max=PASSWORD_MAX), no_nul]
    )
    new_password = new_password_field("New password")
    new_password_again = PasswordField(
        "Repeat the new password",
        validators=[InputRequired(), EqualTo("new_password", message="The passwords differ.")],
    )
    submit = SubmitField("Change password")


class SignOutEverywhereForm(FlaskForm):
    submit = SubmitField("Sign out everywhere")
