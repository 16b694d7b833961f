#!/usr/bin/env python3
"""A small registry v2 stand-in for the cases docker-registry cannot play: it serves an OCI image
layout read-only and can corrupt blobs, stall mid-blob, or demand Bearer tokens.

    stand_in_registry.py --layout DIR --port-file FILE [--log FILE]
                         [--corrupt DIGEST]... [--stall DIGEST]... [--bearer USER:PASS]

Any repository name serves the same layout. Manifests by tag (index.json ref.name) or digest.
Only 127.0.0.1.
"""
import argparse, base64, hashlib, json, os, secrets, signal, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

args = None
tokens = set()
log_lock = threading.Lock()


def blob_path(digest):
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        return None
    return os.path.join(args.layout, "blobs", "sha256", hexpart)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def record(self, status):
        if args.log:
            with log_lock, open(args.log, "a") as f:
                f.write(f"{self.command} {self.path} {status}\n")

    def reply(self, status, body=b"", headers=None):
        self.record(status)
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message, headers=None):
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        self.reply(status, body, h)

    def authorized(self, repo):
        if not args.bearer:
            return True
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in tokens:
            return True
        host = self.headers.get("Host", "127.0.0.1")
        scope = f',scope="repository:{repo}:pull"' if repo else ""
        self.error(401, "UNAUTHORIZED", "authentication required",
                   {"WWW-Authenticate": f'Bearer realm="http://{host}/token",service="skiff-stand-in"{scope}'})
        return False

    def token(self):
        user, _, password = args.bearer.partition(":")
        auth = self.headers.get("Authorization", "")
        ok = False
        if auth.startswith("Basic "):
            try:
                ok = base64.b64decode(auth[6:]).decode() == f"{user}:{password}"
            except Exception:
                ok = False
        if not ok:
            return self.error(401, "UNAUTHORIZED", "bad credentials")
        t = secrets.token_hex(16)
        tokens.add(t)
        self.reply(200, json.dumps({"token": t, "expires_in": 300}).encode(), {"Content-Type": "application/json"})

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path.startswith("/token"):
            return self.token()
        if path in ("/v2", "/v2/"):
            if not self.authorized(None):
                return
            return self.reply(200, b"{}", {"Content-Type": "application/json"})
        if not path.startswith("/v2/"):
            return self.error(404, "NOT_FOUND", "not found")
        rest = path[4:]
        for kind in ("/manifests/", "/blobs/"):
            if kind in rest:
                repo, _, ref = rest.rpartition(kind)
                if not self.authorized(repo):
                    return
                return self.manifest(ref) if kind == "/manifests/" else self.blob(ref)
        self.error(404, "NOT_FOUND", "not found")

    def manifest(self, ref):
        index = json.load(open(os.path.join(args.layout, "index.json")))
        desc = None
        for m in index["manifests"]:
            if m["digest"] == ref or m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
                desc = m
                break
        if desc is None and ref.startswith("sha256:"):
            p = blob_path(ref)
            if p and os.path.exists(p):
                data = open(p, "rb").read()
                desc = {"digest": ref, "mediaType": json.loads(data).get("mediaType")}
        if desc is None:
            return self.error(404, "MANIFEST_UNKNOWN", f"manifest {ref} unknown")
        data = open(blob_path(desc["digest"]), "rb").read()
        media = desc.get("mediaType") or json.loads(data).get("mediaType") or "application/vnd.oci.image.manifest.v1+json"
        self.reply(200, data, {"Content-Type": media, "Docker-Content-Digest": desc["digest"]})

    def blob(self, digest):
        p = blob_path(digest)
        if not p or not os.path.exists(p):
            return self.error(404, "BLOB_UNKNOWN", f"blob {digest} unknown")
        data = open(p, "rb").read()
        if digest in args.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if digest in args.stall:
            self.record(200)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            time.sleep(3600)
            return
        self.reply(200, data, {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest})


def main():
    global args
    # Spawned from a thread that blocks signals (Foundation's Process): unblock them so SIGTERM works.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())
    p = argparse.ArgumentParser()
    p.add_argument("--layout", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log")
    p.add_argument("--corrupt", action="append", default=[])
    p.add_argument("--stall", action="append", default=[])
    p.add_argument("--bearer")
    args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
