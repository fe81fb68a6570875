"""``suanli web``: a local page with charts over the same JSON as ``--json`` (needs ``pip install 'suanli[web]'``).

Nothing here is imported when the CLI starts; ``cli/web_commands.py`` imports ``suanli.web.app`` when asked to serve.
"""
