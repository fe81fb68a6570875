"""``python -m suanli`` runs the command line."""

from suanli.cli.main import main

raise SystemExit(main())
