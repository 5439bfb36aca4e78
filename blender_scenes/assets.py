"""Asset names -> what questions call them. (The asset library with its manifest grows here.)"""
from __future__ import annotations


def display_name(name: str, user_dir: str | None = None) -> str:
    return name.replace("_", " ")
