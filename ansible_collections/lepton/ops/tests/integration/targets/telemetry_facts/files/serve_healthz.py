# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Stand in for a lepton service: answer GET /healthz on 127.0.0.1 for argv[2] seconds at most.

Writes {"pid": ..., "port": ..., "closed_port": ...} to the file argv[1] once it listens;
closed_port is a port of 127.0.0.1 that nothing listens on.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the name http.server calls
        status = 200 if self.path == '/healthz' else 404
        body = b'{"status": "ok", "service": "integration"}'
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass


def main():
    info_file, lifetime = sys.argv[1], float(sys.argv[2])
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    server.daemon_threads = True
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        closed_port = probe.getsockname()[1]
    info = {'pid': os.getpid(), 'port': server.server_address[1], 'closed_port': closed_port}
    with open(info_file + '.tmp', 'w', encoding='utf-8') as handle:
        json.dump(info, handle)
    os.replace(info_file + '.tmp', info_file)
    threading.Timer(lifetime, server.shutdown).start()
    server.serve_forever()
    server.server_close()


if __name__ == '__main__':
    main()
