"""Client faces: the base client, the token cache, streams, conversations, and the async and sync
clients."""
