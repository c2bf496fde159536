"""Django-free code used by more than one app (healthchecks keeps such code in ``hc/lib``): the
LLM clients (``llm/``), local models, prompt formats, stop strings and the loop guard.

Nothing here imports Django or an app (``tests/manualqa/test_layering.py`` reads the imports),
so it is tested without a database (``tests/manualqa/lib/``).
"""
