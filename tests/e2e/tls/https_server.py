#!/usr/bin/env python3
"""A minimal HTTPS stand-in for Langfuse on 127.0.0.1, for the private-CA test: makes a CA
and a server certificate for 127.0.0.1 with the openssl CLI, then answers every POST with
200 `{}` (and the health route with a version) until killed. Writes the port to
--port-file and the CA certificate to --ca-file. Standard library only."""

import argparse
import http.server
import os
import ssl
import subprocess
import tempfile


def make_certs(work, ca_file):
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ca_key, srv_key = os.path.join(work, "ca.key"), os.path.join(work, "srv.key")
    srv_csr, srv_crt = os.path.join(work, "srv.csr"), os.path.join(work, "srv.crt")
    ext = os.path.join(work, "ext.cnf")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_file,
        "-days", "2", "-subj", "/CN=omp-langfuse test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", srv_key, "-out", srv_csr,
        "-subj", "/CN=127.0.0.1")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", srv_csr, "-CA", ca_file, "-CAkey", ca_key, "-CAcreateserial",
        "-out", srv_crt, "-days", "2", "-extfile", ext)
    return srv_crt, srv_key


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, body):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(b'{"status":"OK","version":"4.16.0"}')

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.answer(b"{}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--ca-file", required=True)
    args = ap.parse_args()
    work = tempfile.mkdtemp()
    crt, key = make_certs(work, args.ca_file)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
