"""Run the feed's nginx and a Digest-auth squid for runme.sh until SIGTERM.

Usage: python serve.py FEED_DIR STATE_JSON. Writes STATE_JSON (URLs, proxy credentials, the
squid access log path) once both servers accept connections; stops them on SIGTERM/SIGINT.
The servers come from the collection's tests/services (found through PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import signal
import sys

from ansible_collections.exup.fleet.tests.services.nginx import nginx_server
from ansible_collections.exup.fleet.tests.services.squid import squid_proxy


def main() -> int:
    feed_dir, state_path = sys.argv[1:3]

    def stop(_signum, _frame):
        raise SystemExit(0)  # unwinds the with-blocks below, which stop the servers

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with nginx_server(feed_dir) as nginx, squid_proxy("digest", "exup", "pr0xy-pass") as squid:
        state = {
            "feed_url": nginx.url("catalog.json"),
            "nginx_access_log": str(nginx.access_log_path),
            "proxy_url": squid.url,
            "proxy_username": squid.user,
            "proxy_password": squid.password,
            "squid_access_log": str(squid.access_log_path),
        }
        tmp = state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        os.replace(tmp, state_path)  # runme.sh waits for this file: write it whole
        while True:
            signal.pause()


if __name__ == "__main__":
    sys.exit(main())
