"""Operations, one module per API area: each builds its request(s) and parses the answer once, as
a flow of the core that both client faces run."""
