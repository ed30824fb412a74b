#!/usr/bin/env bash
# Smoke test of the container image without a Docker engine: reads the Dockerfile and does
# what the image would do, with the same parts:
#   - builds the binary with the build stage's own `cargo build` flags (CARGO_TARGET_DIR
#     is honoured) and copies it like the final stage's COPY --from=build;
#   - runs ENTRYPOINT + CMD with exactly the final stage's ENV (nothing else: `env -i`),
#     as its USER when this script runs as root, over an empty temporary directory in place
#     of the VOLUME, with every EXPOSEd port in the ENV moved to a free port;
#   - waits for /ready, runs the HEALTHCHECK command the same way, creates an account with
#     the image's CLI (what `docker exec` would do), checks settings.phtml over HTTP and
#     HTTPS, stops the server with SIGTERM (it must exit 0) and checks that the healthcheck
#     then fails.
#
#   scripts/image-smoke.sh              # release build, like the image
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target_dir=${CARGO_TARGET_DIR:-$root/target}
started=$SECONDS

say() { printf 'image-smoke: %s\n' "$*"; }
fail() {
  printf 'image-smoke: FAILED: %s\n' "$*" >&2
  exit 1
}

# --- What the Dockerfile says ----------------------------------------------------------
# Printed as shell assignments (values quoted with shlex.quote).
facts=$(
  python3 - Dockerfile Cargo.toml <<'PY'
import json, re, shlex, sys

dockerfile, cargo_toml = sys.argv[1], sys.argv[2]

def die(msg):
    sys.exit(f"image-smoke: Dockerfile: {msg}")

# Logical lines: comments dropped, backslash continuations joined.
lines, cur = [], ""
for raw in open(dockerfile, encoding="utf-8"):
    s = raw.rstrip("\n")
    if not cur and s.lstrip().startswith("#"):
        continue
    if s.rstrip().endswith("\\"):
        cur += s.rstrip()[:-1] + " "
        continue
    cur += s
    if cur.strip():
        lines.append(cur.strip())
    cur = ""

stages = []  # [{"name", "instr": [(KEYWORD, rest)]}]
for line in lines:
    kw, _, rest = line.partition(" ")
    kw, rest = kw.upper(), rest.strip()
    if kw == "FROM":
        m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
        if not m:
            die(f"cannot read FROM {rest!r}")
        stages.append({"name": m.group(2), "instr": []})
    elif stages:
        stages[-1]["instr"].append((kw, rest))
if len(stages) < 2:
    die("expected a build stage and a final stage")
final = stages[-1]

def json_array(kw, rest):
    try:
        v = json.loads(rest)
    except ValueError:
        die(f"{kw} must be a JSON array (exec form): {rest!r}")
    if not (isinstance(v, list) and v and all(isinstance(x, str) for x in v)):
        die(f"{kw} must be a non-empty JSON array of strings")
    return v

env, volumes, expose, entrypoint, cmd, health, copies, user = {}, [], [], None, None, None, [], None
args = {}
for kw, rest in final["instr"]:
    if kw == "ENV":
        for tok in shlex.split(rest):
            k, sep, v = tok.partition("=")
            if not sep:
                die(f"ENV must use KEY=VALUE: {tok!r}")
            env[k] = v
    elif kw == "ARG":
        k, _, v = rest.partition("=")
        args[k] = v.strip('"')
    elif kw == "VOLUME":
        volumes += json_array(kw, rest)
    elif kw == "EXPOSE":
        expose += [p.split("/")[0] for p in rest.split()]
    elif kw == "ENTRYPOINT":
        entrypoint = json_array(kw, rest)
    elif kw == "CMD":
        cmd = json_array(kw, rest)
    elif kw == "USER":
        user = rest
    elif kw == "HEALTHCHECK":
        m = re.search(r"\bCMD\s+(\[.*\])\s*$", rest)
        if not m:
            die("HEALTHCHECK must be CMD [\"...\"] (exec form)")
        health = json_array(kw, m.group(1))
    elif kw == "COPY" and "--from=" in rest:
        parts = [p for p in rest.split() if not p.startswith("--")]
        frm = re.search(r"--from=(\S+)", rest).group(1)
        copies.append((frm, parts[0], parts[-1]))
if not (entrypoint and cmd and health and volumes and expose):
    die("ENTRYPOINT, CMD, HEALTHCHECK, VOLUME and EXPOSE are all required in the final stage")
if len(volumes) != 1:
    die("exactly one VOLUME expected")

# The binary: the COPY --from=<build stage> whose destination ENTRYPOINT runs.
image_bin = entrypoint[0]
src = [c for c in copies if c[2] == image_bin]
if len(src) != 1:
    die(f"no single COPY --from=... to {image_bin}")
build = next((s for s in stages if s["name"] == src[0][0]), None)
if build is None:
    die(f"no stage named {src[0][0]}")
workdir = next((r for k, r in reversed(build["instr"]) if k == "WORKDIR"), "/")
prefix = workdir.rstrip("/") + "/target/"
if not src[0][1].startswith(prefix):
    die(f"the binary must come from {prefix}..., not {src[0][1]}")
binary_rel = src[0][1][len(prefix):]
# The last `cargo build` of that stage is the one that builds the real sources.
builds = [r for k, r in build["instr"] if k == "RUN" and "cargo build" in r]
if not builds:
    die("no cargo build in the build stage")
flags = re.search(r"cargo build((?:\s+--?[\w-]+(?:=\S+)?)*)", builds[-1]).group(1).split()
if "--release" not in flags or not binary_rel.startswith("release/"):
    die("the build stage must build --release and copy from target/release/")

m = re.search(r'^version\s*=\s*"([^"]+)"', open(cargo_toml, encoding="utf-8").read(), re.M)
q = shlex.quote
out = {
    "build_flags": flags, "binary_rel": binary_rel, "image_bin": image_bin,
    "entrypoint": entrypoint, "cmd": cmd, "health": health, "volume": volumes[0],
    "expose": expose, "user": user or "", "label_version": args.get("VERSION", ""),
    "cargo_version": m.group(1) if m else "",
}
for k, v in out.items():
    print(f"{k}=(" + " ".join(q(x) for x in v) + ")" if isinstance(v, list) else f"{k}={q(v)}")
print("image_env=(" + " ".join(q(f"{k}={v}") for k, v in env.items()) + ")")
PY
)
eval "$facts"
say "Dockerfile: cargo build ${build_flags[*]}; ENTRYPOINT ${entrypoint[*]}; CMD ${cmd[*]}; HEALTHCHECK ${health[*]}"
say "ENV ${image_env[*]}; VOLUME $volume; EXPOSE ${expose[*]}; USER ${user:-root}"
[ "$label_version" = "$cargo_version" ] ||
  fail "ARG VERSION=$label_version in the Dockerfile differs from Cargo.toml version $cargo_version"

# --- The build stage ---------------------------------------------------------------------
t0=$SECONDS
cargo build "${build_flags[@]}"
say "cargo build ${build_flags[*]}: $((SECONDS - t0)) s"
built=$target_dir/$binary_rel
[ -x "$built" ] || fail "$built was not built"

# --- The container, without an engine ----------------------------------------------------
work=$(mktemp -d)
chmod 755 "$work"
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bin" "$work/volume"
install -m 755 "$built" "$work/bin/$(basename "$image_bin")"
bin=$work/bin/$(basename "$image_bin")

# USER: as root, drop to the image's user like the runtime does, and give it the volume
# (the image's /data belongs to it); otherwise run as whoever runs this script.
as_user=()
if [ "$(id -u)" = 0 ] && [ -n "$user" ]; then
  command -v setpriv >/dev/null || fail "setpriv (util-linux) is needed to run as USER $user"
  uid=${user%%:*}
  gid=${user#*:}
  [ "$gid" != "$user" ] || gid=$uid
  case "$uid$gid" in *[!0-9]*) fail "USER must be numeric uid:gid, not $user" ;; esac
  chown "$uid:$gid" "$work/volume"
  as_user=(setpriv --reuid="$uid" --regid="$gid" --clear-groups)
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ENV with the volume replaced by the temporary directory and each EXPOSEd port by a free one.
declare -A port_of
for p in "${expose[@]}"; do port_of[$p]=$(free_port); done
run_env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
declare -A used_port
for kv in "${image_env[@]}"; do
  k=${kv%%=*}
  v=${kv#*=}
  if [ "$v" = "$volume" ] || [[ $v == "$volume"/* ]]; then
    v=$work/volume${v#"$volume"}
  fi
  if [[ $v =~ ^(.*):([0-9]+)$ ]] && [ -n "${port_of[${BASH_REMATCH[2]}]:-}" ]; then
    used_port[${BASH_REMATCH[2]}]=1
    v=${BASH_REMATCH[1]}:${port_of[${BASH_REMATCH[2]}]}
  fi
  run_env+=("$k=$v")
done
for p in "${expose[@]}"; do
  [ -n "${used_port[$p]:-}" ] || fail "EXPOSE $p is not a listener port in the image's ENV"
done
listen_port() {
  local kv
  for kv in "${run_env[@]}"; do
    [[ $kv == "$1"=* ]] && { echo "${kv##*:}"; return; }
  done
  fail "the image's ENV has no $1"
}
http_port=$(listen_port SIPSETTINGS_LISTEN)
tls_port=$(listen_port SIPSETTINGS_TLS_LISTEN)

# `docker run IMAGE` / `docker exec CONTAINER ...`: the image's command line with the
# image's binary path replaced by the copy.
image_cmd() {
  local argv=("$@")
  [ "${argv[0]}" = "$image_bin" ] && argv[0]=$bin
  "${as_user[@]}" env -i "${run_env[@]}" "${argv[@]}"
}
# The same with `exec`: in the background, the server is then the very process whose pid we
# signal (not a subshell).
image_exec() {
  local argv=("$@")
  [ "${argv[0]}" = "$image_bin" ] && argv[0]=$bin
  exec "${as_user[@]}" env -i "${run_env[@]}" "${argv[@]}"
}

"$bin" --version | grep -qF " $cargo_version" || fail "sipsettings --version does not say $cargo_version"

image_exec "${entrypoint[@]}" "${cmd[@]}" >"$work/serve.log" 2>&1 &
server_pid=$!
base=http://127.0.0.1:$http_port
for i in $(seq 1 150); do
  kill -0 "$server_pid" 2>/dev/null || {
    cat "$work/serve.log" >&2
    fail "the server exited during start"
  }
  curl -fsS -o /dev/null "$base/ready" 2>/dev/null && break
  [ "$i" -lt 150 ] || {
    cat "$work/serve.log" >&2
    fail "/ready did not answer 200 within 30 s"
  }
  sleep 0.2
done
say "ready on $base (and https://127.0.0.1:$tls_port)"

out=$(image_cmd "${health[@]}" 2>&1) || fail "HEALTHCHECK ${health[*]} failed: $out"
say "HEALTHCHECK ${health[*]}: $out"
# docker-compose.yml's check of the replicas.
out=$(image_cmd "${health[@]}" --ready 2>&1) || fail "${health[*]} --ready failed: $out"

# What the image created in its (empty) volume, owned by its user.
for f in secret.key ca.crt ca.key server.crt server.key sipsettings.db; do
  [ -f "$work/volume/$f" ] || fail "serve did not create $volume/$f"
done
[ "$(stat -c %a "$work/volume/secret.key")" = 600 ] || fail "$volume/secret.key is not mode 0600"
[ "$(stat -c %a "$work/volume/ca.key")" = 600 ] || fail "$volume/ca.key is not mode 0600"
if [ ${#as_user[@]} -gt 0 ]; then
  [ "$(stat -c %u "$work/volume/secret.key")" = "$uid" ] || fail "the volume's files do not belong to USER $user"
fi

image_cmd "${entrypoint[@]}" domain add example.com >/dev/null
image_cmd "${entrypoint[@]}" account add alice@example.com --password smoke-secret >/dev/null
S="settings.phtml?action=get_identity&realm=example.com"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/$S")
[ "$code" = 401 ] || fail "settings.phtml without credentials answered $code, not 401"
for url in "$base/$S" "https://127.0.0.1:$tls_port/$S"; do
  body=$(curl -fsS --cacert "$work/volume/ca.crt" --digest -u alice:smoke-secret "$url") ||
    fail "settings.phtml get_identity failed at $url"
  case $body in
    *'"alice@example.com"'*) ;;
    *) fail "unexpected get_identity answer at $url: $body" ;;
  esac
done
say "settings.phtml get_identity answers over HTTP and HTTPS (server certificate from the volume's CA)"

# docker stop: SIGTERM, then the process must finish by itself with status 0.
kill -TERM "$server_pid"
status=0
for _ in $(seq 1 150); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.2
done
if kill -0 "$server_pid" 2>/dev/null; then
  fail "the server did not stop within 30 s of SIGTERM"
fi
wait "$server_pid" || status=$?
server_pid=
[ "$status" = 0 ] || {
  cat "$work/serve.log" >&2
  fail "the server exited with status $status after SIGTERM"
}
grep -q "shutting down" "$work/serve.log" || fail "no shutdown message in the log"
if out=$(image_cmd "${health[@]}" 2>&1); then
  fail "HEALTHCHECK still succeeds after the server stopped: $out"
fi
say "SIGTERM: clean exit 0; HEALTHCHECK now fails as it should"
say "passed in $((SECONDS - started)) s"
