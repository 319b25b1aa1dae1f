"""Storage: reading the files ClearML recorded, and writing exports to an export root.

The border, by module:

- :mod:`.recorded`: where a URL ClearML recorded is fetched from (the account's fileserver and its
  aliases, ``s3://``/``gs://``/``azure://`` through fsspec, or ``external`` with a reason) and fetching it;
- :mod:`.credentials`: which endpoint gets which storage credentials (recorded URLs and export roots);
- :mod:`.remote`: an export root on object storage (:class:`ArchiveStore`: reads, verified upload with the
  manifest last, re-reading a published export);
- :mod:`.exports`: :class:`RemoteExports`, the staging folder around an exporter for an object-store export
  root, and :func:`check_remote_export`;
- :mod:`.layout`: the relative paths a published export has under any export root.

Nothing here talks to the ClearML API: the fileserver is read through the client the caller passes.
"""

from .credentials import OBJECT_SCHEMES, client_storage_options, options_for
from .exports import RemoteExports, check_remote_export, default_staging_root, is_remote_root
from .layout import MANIFEST_NAME, index_relpath
from .recorded import Location, ObjectReadLimits, classify, fetch_object, fileserver_url, locate
from .remote import ArchiveStore, PublishReport, RemoteMismatch

__all__ = ["MANIFEST_NAME", "OBJECT_SCHEMES", "ArchiveStore", "Location", "ObjectReadLimits", "PublishReport",
           "RemoteExports", "RemoteMismatch", "check_remote_export", "classify", "client_storage_options", "default_staging_root",
           "fetch_object", "fileserver_url", "index_relpath", "is_remote_root", "locate", "options_for"]
