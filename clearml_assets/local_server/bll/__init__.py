"""Business logic of the local server, as clearml-server's ``apiserver/bll``: handlers in ``services/`` parse the
request (``request_data_model``) and call these functions, which work on the store and raise ``ApiError``."""
