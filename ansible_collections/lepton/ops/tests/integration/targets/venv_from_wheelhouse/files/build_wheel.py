# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Write the tiny pure-Python wheel mini-1.0-py3-none-any.whl into the directory argv[1]."""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import zipfile

NAME = 'mini'
VERSION = '1.0'


def main():
    directory = sys.argv[1]
    dist_info = '%s-%s.dist-info' % (NAME, VERSION)
    files = {
        NAME + '/__init__.py': b'VALUE = 1\n',
        dist_info + '/METADATA': ('Metadata-Version: 2.1\nName: %s\nVersion: %s\n'
                                  % (NAME, VERSION)).encode(),
        dist_info + '/WHEEL': (b'Wheel-Version: 1.0\nGenerator: lepton-ops-tests\n'
                               b'Root-Is-Purelib: true\nTag: py3-none-any\n'),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
        record.append('%s,sha256=%s,%d' % (path, digest, len(data)))
    record.append(dist_info + '/RECORD,,')
    files[dist_info + '/RECORD'] = ('\n'.join(record) + '\n').encode()
    wheel = os.path.join(directory, '%s-%s-py3-none-any.whl' % (NAME, VERSION))
    with zipfile.ZipFile(wheel, 'w', zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    sys.stdout.write(wheel + '\n')


if __name__ == '__main__':
    main()
