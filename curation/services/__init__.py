"""Writes for the curation app, one module per area; the public names are re-exported here."""

from curation.services.documents import *  # noqa: F403
from curation.services.feedback import *  # noqa: F403
from curation.services.figures import *  # noqa: F403
from curation.services.generation import *  # noqa: F403
from curation.services.ingestion import *  # noqa: F403
from curation.services.qa_pairs import *  # noqa: F403
from curation.services.regenerate import *  # noqa: F403
from curation.services.review import *  # noqa: F403
