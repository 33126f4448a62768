"""The report's parts, one module per kind of artifact; each returns HTML ("" when absent)."""
