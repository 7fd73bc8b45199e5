"""Native framework integrations, each behind its own extra and imported only when used.

- :mod:`gigapy.integrations.langchain`: ``ChatGigaChat`` and ``GigaChatEmbeddings``
  (``pip install 'gigapy[langchain]'``);
- :mod:`gigapy.integrations.llama_index`: ``GigaChatLLM`` and ``GigaChatEmbedding``
  (``pip install 'gigapy[llama-index]'``).

Every model of every integration that has the same settings shares one pair of gigapy
clients (sync and async) per process, so one access token and one connection pool serve them
all; a model built per request costs no new client and no new token.
"""
