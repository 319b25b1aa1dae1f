"""Queue logic (clearml-server ``bll/queue``)."""

from .queue_bll import (DEFAULT_TAG, HIDDEN_TAGS, INVALID, add_entry, default_queue, get_queue, new_queue,
                        public_view, remove_entry, reposition, touch_queue)

__all__ = ["DEFAULT_TAG", "HIDDEN_TAGS", "INVALID", "add_entry", "default_queue", "get_queue", "new_queue",
           "public_view", "remove_entry", "reposition", "touch_queue"]
