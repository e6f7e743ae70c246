"""Queries and writes, as plain async functions over an ``AsyncConnection``.

Both the HTML blueprints and the API call these; none of them knows about HTTP.
"""
