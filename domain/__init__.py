"""The pure core: events, the Order aggregate, its rules and errors. No I/O lives here."""
