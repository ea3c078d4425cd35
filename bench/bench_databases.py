"""The benchmarks' own PostgreSQL databases, on the server `DATABASE_URL` names: a database is
dropped and recreated by name (the path of its URL), through the server's `postgres` database."""

import os
import urllib.parse

import psycopg


def bench_database_url(name: str) -> str:
    """`DATABASE_URL` with its database replaced by `name`."""
    parsed = urllib.parse.urlparse(os.environ["DATABASE_URL"])
    return urllib.parse.urlunparse(parsed._replace(path=f"/{name}"))


def _on_server(url: str, *statements: str) -> None:
    parsed = urllib.parse.urlparse(url)
    admin = urllib.parse.urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


def recreate_database(url: str) -> None:
    name = urllib.parse.urlparse(url).path.lstrip("/")
    _on_server(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    name = urllib.parse.urlparse(url).path.lstrip("/")
    _on_server(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
