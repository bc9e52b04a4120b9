"""Regenerate the committed JSON Schema files from the pydantic models."""

import json
from pathlib import Path

from schemas import MESSAGE_MODELS

SCHEMA_DIR = Path(__file__).parent / "json"


def render(name: str) -> str:
    """The JSON Schema text of one message model, as committed."""
    schema = MESSAGE_MODELS[name].model_json_schema(by_alias=True)
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name in MESSAGE_MODELS:
        path = SCHEMA_DIR / f"{name}.schema.json"
        path.write_text(render(name))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
