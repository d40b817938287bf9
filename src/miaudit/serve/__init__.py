"""``miaudit serve``: a model file as a black-box prediction API (FastAPI + uvicorn), as the services
that membership-inference papers attack expose one. Nothing here is needed by an audit; an audit of
a served model goes through ``miaudit.targets.http_target``.

settings.py: flags and tokens; model_file.py: the checked model; outputs.py: output options;
limits.py: per-token rate limit and query budget; app.py: the FastAPI app; server.py: uvicorn;
command.py: what the CLI command calls.
"""
