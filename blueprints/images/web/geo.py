"""Stage 8 (data centres): which data centre answered, as the `X-Dc` response header.

The data centre is `DC` if set, else the zone scale placed this server in (`SCALE_ZONE`,
from the service's `zones:`), without its `dc-` prefix: `zones: [dc-b]` answers `X-Dc: b`.
Servers placed nowhere send no such header, as in stages 1-7.
"""

import os


def _dc():
    dc = os.environ.get("DC") or os.environ.get("SCALE_ZONE", "")
    return dc[3:] if dc.startswith("dc-") else dc


HEADERS = {"X-Dc": _dc()} if _dc() else {}
