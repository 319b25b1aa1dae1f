"""``server.*``: what this server is."""

from ..core import Call, endpoint


@endpoint("server.info")
def info(call: Call) -> dict:
    """Version facts of the release the server presents itself as, in the real server's field names."""
    return {"version": call.release.version, "build": "local", "commit": "", "api_version": call.release.api_version,
            "uid": "clearml-assets-local-server"}


@endpoint("server.report_stats_option", min_version="2.4")
def report_stats_option(call: Call) -> dict:
    """The local server sends no usage statistics anywhere: the option is not supported (as a real server whose
    statistics reporter is off), so the web app never asks."""
    return {"supported": False}
