"""pytest fixtures for system tests: real servers on loopback, and the collection on sys.path.

Servers come from tests/services (nginx.py, squid.py, hostile.py), the lab of managed hosts from
tests/lab/lab.py. The squid proxies are session scoped (they keep no state a test could see: squid
caches nothing); nginx and the hostile server are per test, so their logs and request counts belong
to one test. A test that needs a private proxy (a clean
access log, other credentials) uses squid.squid_proxy() directly.
"""

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _collections_dir() -> Path:
    """A directory holding ansible_collections/exup/fleet (pointing at this repository).

    The tooling makes build/collections with that symlink; before it has run, make the same
    structure in a temp dir, removed when the Python process exits.
    """
    built = REPO_ROOT / "build" / "collections"
    if (built / "ansible_collections" / "exup" / "fleet").is_dir():
        return built
    temp = Path(tempfile.mkdtemp(prefix="exup-collections-"))
    atexit.register(shutil.rmtree, temp, ignore_errors=True)  # rmtree does not follow the symlink
    namespace = temp / "ansible_collections" / "exup"
    namespace.mkdir(parents=True)
    (namespace / "fleet").symlink_to(REPO_ROOT, target_is_directory=True)
    return temp


# Done at import, not in a fixture: test modules import the collection at their top, which
# happens when pytest collects them, before any fixture runs.
COLLECTIONS_DIR = _collections_dir()
if str(COLLECTIONS_DIR) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_DIR))

# pylint: disable=wrong-import-position  # needs the sys.path entry above
from ansible_collections.exup.fleet.tests.lab.lab import Lab  # noqa: E402
from ansible_collections.exup.fleet.tests.services.hostile import hostile_http_server  # noqa: E402
from ansible_collections.exup.fleet.tests.services.nginx import nginx_server  # noqa: E402
from ansible_collections.exup.fleet.tests.services.squid import squid_proxy  # noqa: E402

# pylint: enable=wrong-import-position


@pytest.fixture(scope="session")
def collections_path() -> Path:
    """The directory on sys.path that holds ansible_collections/exup/fleet (e.g. for ANSIBLE_COLLECTIONS_PATH)."""
    return COLLECTIONS_DIR


@pytest.fixture
def tmp_feed_dir(tmp_path: Path) -> Path:
    """An empty directory for a test's feed; the nginx fixture serves it."""
    feed = tmp_path / "feed"
    feed.mkdir()
    return feed


@pytest.fixture
def nginx(tmp_feed_dir: Path):
    """nginx serving tmp_feed_dir over http (.base_url, .url(path), .access_log(), .wait_for_log(n))."""
    with nginx_server(tmp_feed_dir) as server:
        yield server


@pytest.fixture
def nginx_tls(tmp_feed_dir: Path):
    """nginx serving tmp_feed_dir over https with a test CA (.ca_path)."""
    with nginx_server(tmp_feed_dir, tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def squid_open():
    """squid without authentication."""
    with squid_proxy() as proxy:
        yield proxy


@pytest.fixture(scope="session")
def squid_basic():
    """squid demanding Basic proxy auth (.url, .url_with_credentials, .user, .password)."""
    with squid_proxy("basic") as proxy:
        yield proxy


@pytest.fixture(scope="session")
def squid_digest():
    """squid demanding Digest proxy auth (.url, .user, .password, .realm)."""
    with squid_proxy("digest") as proxy:
        yield proxy


@pytest.fixture(scope="session")
def squid_ntlm():
    """squid demanding NTLM proxy auth only (any NTLM handshake passes: for 'unsupported' tests)."""
    with squid_proxy("ntlm") as proxy:
        yield proxy


@pytest.fixture
def hostile_server():
    """An empty hostile HTTP server: add files with .add(path, data, **behaviour)."""
    with hostile_http_server() as server:
        yield server


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The demo lab (docs/lab.md) for one test module: sshd on 127.0.1.x and a host root per host.

    Module scoped: tests of one module share its hosts (use .reset_host(name) for a clean one).
    Its sshd and every ssh session into it are stopped at the end, whatever happened.
    """
    instance = Lab(tmp_path_factory.mktemp("lab"), hosts="demo")
    try:
        instance.up()
        yield instance
    finally:
        instance.down()
