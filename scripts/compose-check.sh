#!/usr/bin/env bash
# Checks docker-compose.yml and deploy/nginx.conf without a Docker engine:
#   1. `docker compose config -q` (or Debian's `docker-compose config -q`): the compose schema;
#   2. that the pieces agree with each other: nginx's upstream names the replica services and
#      port, trusted_proxies is nginx's fixed address, the client-certificate header nginx
#      sets is the one the replicas read, the replicas share their data volume (secret key,
#      CA) and nginx reads the CA from it.
# nginx itself runs deploy/nginx.conf in tests/it/replicas.rs.
#
#   scripts/compose-check.sh [PYTHON]    # PYTHON: an interpreter with PyYAML (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
# The file requires it; any value does for a check.
export POSTGRES_PASSWORD=${POSTGRES_PASSWORD:-compose-check}

if docker compose version >/dev/null 2>&1; then
  docker compose -f docker-compose.yml config -q
  echo "compose-check: docker compose config: ok"
elif command -v docker-compose >/dev/null 2>&1; then
  docker-compose -f docker-compose.yml config -q
  echo "compose-check: docker-compose config: ok"
else
  echo "compose-check: no docker compose client: schema not checked" >&2
fi

"$python" - docker-compose.yml deploy/nginx.conf <<'PY'
import re, sys
import yaml

compose_file, nginx_file = sys.argv[1], sys.argv[2]
doc = yaml.safe_load(open(compose_file, encoding="utf-8"))
nginx = open(nginx_file, encoding="utf-8").read()
services = doc["services"]
errors = []

def check(cond, msg):
    if not cond:
        errors.append(msg)

def env(svc):
    e = services[svc].get("environment") or {}
    if isinstance(e, list):
        e = dict(x.split("=", 1) for x in e)
    return e

def ipv4(svc):
    nets = services[svc].get("networks") or {}
    return [n.get("ipv4_address") for n in nets.values() if isinstance(n, dict)]

def volume_at(svc, path):
    for v in services[svc].get("volumes") or []:
        parts = v.split(":") if isinstance(v, str) else [v["source"], v["target"]]
        if parts[1] == path:
            return parts[0]
    return None

# The upstream: every `server NAME:PORT` is a sipsettings service exposing PORT.
upstream = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", nginx, re.M)
check(len(upstream) >= 2, "nginx.conf: expected at least two upstream servers")
apps = []
for name, port in upstream:
    check(name in services, f"nginx upstream {name} is not a compose service")
    if name in services:
        apps.append(name)
        check(port in [str(p) for p in services[name].get("expose") or []],
              f"{name} does not expose {port}")
        check(str(services[name].get("image", "")).startswith("sipsettings"),
              f"{name} is not the sipsettings image")

proxy = [s for s in services if volume_at(s, "/etc/nginx/nginx.conf")]
check(len(proxy) == 1, "exactly one service must mount deploy/nginx.conf")
if proxy and apps:
    p = proxy[0]
    check(volume_at(p, "/etc/nginx/nginx.conf").endswith("deploy/nginx.conf"),
          "nginx must mount ./deploy/nginx.conf")
    nginx_ip = ipv4(p)
    check(len(nginx_ip) == 1 and nginx_ip[0], "nginx needs a fixed ipv4_address")
    header = re.search(r"proxy_set_header\s+(\S+)\s+\$ssl_client_escaped_cert;", nginx)
    check(header is not None, "nginx.conf must forward $ssl_client_escaped_cert")
    shared = volume_at(apps[0], "/data")
    check(shared is not None, f"{apps[0]} has no /data volume")
    for a in apps:
        e = env(a)
        check(e.get("SIPSETTINGS_TRUSTED_PROXIES") == f"{nginx_ip[0]}/32",
              f"{a}: SIPSETTINGS_TRUSTED_PROXIES must be nginx's address {nginx_ip[0]}/32")
        if header:
            check(e.get("SIPSETTINGS_CLIENT_CERT__HEADER", "").lower() == header.group(1).lower(),
                  f"{a}: SIPSETTINGS_CLIENT_CERT__HEADER must be {header.group(1)}")
        check(str(e.get("SIPSETTINGS_DATABASE_URL", "")).startswith("postgres://"),
              f"{a}: replicas must share a PostgreSQL database")
        # Round-robin (no hash in the upstream) needs every account read from the store.
        if not re.search(r"^\s*(hash|ip_hash)\b", nginx, re.M):
            check(str(e.get("SIPSETTINGS_DATABASE__ACCOUNT_CACHE_MS")) == "0",
                  f"{a}: round-robin balancing needs SIPSETTINGS_DATABASE__ACCOUNT_CACHE_MS=0")
        check(volume_at(a, "/data") == shared,
              f"{a}: replicas must share one data volume (secret.key and the CA)")
        check(len(ipv4(a)) == 1, f"{a} needs a fixed ipv4_address (nginx resolves at start)")
    # nginx reads the CA and server certificate from the replicas' volume.
    for m in set(re.findall(r"(/\S+?)/(?:ca|server)\.(?:crt|key);", nginx)):
        check(volume_at(p, m) == shared,
              f"nginx must mount the replicas' data volume {shared} at {m}")

if errors:
    for e in errors:
        print(f"compose-check: {e}", file=sys.stderr)
    sys.exit(1)
print(f"compose-check: {len(apps)} replicas behind nginx, shared volume and settings agree: ok")
PY
