# -*- coding: utf-8 -*-
# Copyright: exup.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""exup_service_code: the service's code written to a folder, idempotently; from a payload zip as AnsiballZ runs it.

The system test tests/system/test_repository_service_role.py runs it on a lab host through the role.
"""

from __future__ import annotations

import os
import zipfile

from ansible_collections.exup.fleet.plugins.modules import exup_service_code as code


def apply(dest, wanted):
    written, removed = code.changes(wanted, code.present_files(str(dest)))
    for name in written:
        code.write_file(str(dest), name, wanted[name])
    for name in removed:
        os.unlink(os.path.join(str(dest), name))
    return written, removed


def test_the_source_tree_is_shipped_and_a_second_write_changes_nothing(tmp_path):
    wanted = code.shipped_files()
    assert code.PACKAGE + '/service/main.py' in wanted
    assert code.PACKAGE + '/service/app.py' in wanted and code.PACKAGE + '/__init__.py' in wanted
    assert not any('__pycache__' in name or not name.endswith('.py') for name in wanted)
    written, removed = apply(tmp_path, wanted)
    assert written == sorted(wanted) and removed == []
    assert oct(os.stat(tmp_path / code.PACKAGE / 'service' / 'main.py').st_mode & 0o777) == '0o644'
    assert apply(tmp_path, wanted) == ([], [])
    assert code.digest_of(code.present_files(str(tmp_path))) == code.digest_of(wanted)


def test_a_changed_file_is_written_again_and_a_stale_one_removed(tmp_path):
    wanted = code.shipped_files()
    apply(tmp_path, wanted)
    main = tmp_path / code.PACKAGE / 'service' / 'main.py'
    main.write_text('# changed by hand\n')
    stale = tmp_path / code.PACKAGE / 'service' / 'gone.py'
    stale.write_text('')
    (tmp_path / code.PACKAGE / 'service' / '__pycache__').mkdir()
    (tmp_path / code.PACKAGE / 'service' / '__pycache__' / 'main.cpython-313.pyc').write_bytes(b'x')
    written, removed = apply(tmp_path, wanted)
    assert written == [code.PACKAGE + '/service/main.py'] and removed == [code.PACKAGE + '/service/gone.py']
    assert main.read_bytes() == wanted[code.PACKAGE + '/service/main.py'] and not stale.exists()


def test_the_files_come_from_the_payload_zip_when_the_module_runs_from_one(tmp_path, monkeypatch):
    payload = tmp_path / 'payload.zip'
    with zipfile.ZipFile(payload, 'w') as archive:
        archive.writestr(code.PACKAGE + '/__init__.py', '')
        archive.writestr(code.PACKAGE + '/service/main.py', 'MAIN = 1\n')
        archive.writestr('ansible_collections/exup/fleet/plugins/modules/exup_service_code.py', 'not the service\n')
        archive.writestr('ansible/module_utils/basic.py', 'not the service\n')

    class Loader:
        archive = str(payload)

    monkeypatch.setattr(code.service_main, '__loader__', Loader())
    assert code.shipped_files() == {code.PACKAGE + '/__init__.py': b'', code.PACKAGE + '/service/main.py': b'MAIN = 1\n'}
