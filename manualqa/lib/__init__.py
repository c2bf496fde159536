"""Django-free code used by more than one app (healthchecks keeps such code in ``hc/lib``).

Nothing here imports Django, so it is tested without a database (``tests/manualqa/lib/``).
"""
