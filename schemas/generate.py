"""Write schemas/event.schema.json from the models: `python -m permstore.schemas.generate`."""

from __future__ import annotations

import json
from pathlib import Path

from permstore.schemas.events import event_json_schema

SCHEMA_PATH = Path(__file__).with_name("event.schema.json")


def render() -> str:
    """The JSON Schema text publishers validate against."""
    return json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    """Regenerate the checked-in schema file."""
    SCHEMA_PATH.write_text(render())
    print(f"wrote {SCHEMA_PATH}")


if __name__ == "__main__":
    main()
