"""Chat rows keep an HMAC of an anonymous owner's session key, never the key itself (security
review L6): digest the raw keys already stored. Raw Django session keys are 32 lower-case
letters and digits; other values (digests, evaluation runs' "evaluation-run-N") stay as they are.
Not reversible: the keys are not kept anywhere else.
"""

import hashlib
import hmac
import re

from django.conf import settings
from django.db import migrations

_RAW_SESSION_KEY = re.compile(r"^[a-z0-9]{32}$")


def digest_session_keys(apps, schema_editor):
    secret = settings.SECRET_KEY.encode()
    for name in ("Conversation", "Feedback", "Preference"):
        model = apps.get_model("chat", name)
        for row in model.objects.exclude(session_key="").only("pk", "session_key").iterator():
            if _RAW_SESSION_KEY.match(row.session_key):
                digest = hmac.new(secret, row.session_key.encode(), hashlib.sha256).hexdigest()
                model.objects.filter(pk=row.pk).update(session_key=digest)


class Migration(migrations.Migration):
    dependencies = [("chat", "0002_answer_styles_verification")]

    operations = [migrations.RunPython(digest_session_keys, migrations.RunPython.noop)]
