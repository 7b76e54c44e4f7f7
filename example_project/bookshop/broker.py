"""kombu's filesystem broker, with messages that appear whole.

kombu 5.7 creates a message file under its final name, then writes it. A
worker polling the folder can take the file in between, read nothing, fail to
decode it and lose the message. Here a message is written under a name the
worker does not look for and renamed into place, which is atomic within one
folder.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps

# A name ending in this does not end in ".<queue>.msg", so _get, _size and
# _purge pass it by.
PARTIAL = ".partial"


class Channel(filesystem.Channel):  # type: ignore[misc]
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        # Same name scheme as kombu's: sorted names keep the queue's order.
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL
        try:
            with open(partial, "wb") as file:
                file.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):  # type: ignore[misc]
    Channel = Channel
    # Lets as_uri name the broker as kombu's own is named, not by this class's path.
    can_parse_url = True

    def as_uri(self, uri: str, include_password: bool = False, mask: str = "**") -> str:
        return "filesystem://localhost//"
