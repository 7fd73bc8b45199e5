"""Sans-IO core: flows and actions, wire format, request bodies, response and error mapping, SSE,
stream state and the token wire format. No I/O here: the drivers and faces above do it."""
