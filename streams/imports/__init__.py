"""The import of exports: mapping files that turn a team's CSV / JSON Lines export into touchpoint events."""
