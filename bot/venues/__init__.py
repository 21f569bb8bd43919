"""Pure venue parsers: frames and REST payloads in, normalised records out. No I/O here."""
