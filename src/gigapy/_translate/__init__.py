"""OpenAI- and Anthropic-shaped requests and answers <-> GigaChat v1/v2 (sans-IO, pure).

No I/O happens here: the caller sends the GigaChat call, uploads the files a request
needs (:attr:`Plan.uploads`), and feeds the answer back. Clock and ids are injected
(:class:`TranslateContext`). See ``docs/openai.md`` for the mapping tables.
"""
