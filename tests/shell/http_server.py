#!/usr/bin/env python3
"""A loopback HTTP server for the installer tests: serves the files of one directory.

Usage: http_server.py DIR PORTFILE LOGFILE [cut|stall]
Prints nothing; writes the port it listens on (127.0.0.1, picked by the kernel) to PORTFILE and
one line per request path to LOGFILE. With "cut", a .tar.gz is announced at its full length but
the connection is closed after half of it; with "stall", half is sent and then nothing, until
the client goes away.
"""
import http.server
import os
import sys
import time

ROOT, PORTFILE, LOGFILE = sys.argv[1:4]
MODE = sys.argv[4] if len(sys.argv) > 4 else ""


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(LOGFILE, "a") as log:
            log.write(self.path + "\n")
        path = os.path.join(ROOT, os.path.basename(self.path))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if MODE and path.endswith(".tar.gz"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if MODE == "stall":
                time.sleep(600)
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
server.serve_forever()
