# shellcheck shell=bash disable=SC2154 # $run, $logs and $pki come from the sourcing script
# Shell helpers shared by hack/cluster.sh and hack/real-node.sh. Callers set $LOG_PREFIX,
# $run (pid files), $logs (one log per component) and $pki before using them.

say() { printf '[%s] %s\n' "$LOG_PREFIX" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$LOG_PREFIX" "$*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

start() { # name, then the command line
  local name=$1; shift
  mkdir -p "$logs"
  # The daemon keeps no descriptor of ours beyond 0-2: one inherited from a caller (a
  # `flock LOCK make demo`) would hold that caller's lock for as long as the cluster runs.
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid "$@" >"$logs/$name.log" 2>&1 < /dev/null
  ) &
  echo $! >"$run/$name.pid"
}

stop() { # name: TERM, then KILL after 5 s
  local pid
  [ -f "$run/$1.pid" ] || return 0
  pid=$(cat "$run/$1.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$run/$1.pid"
}

# Waits for a check to pass while the component stays alive; names the log on failure.
wait_for() { # component, description, check command...
  local name=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + START_TIMEOUT ))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then
      tail -n 20 "$logs/$name.log" >&2 || true
      die "$name exited while waiting for $what; see its log: $logs/$name.log"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 20 "$logs/$name.log" >&2 || true
      die "$name: $what not reached in ${START_TIMEOUT}s; see its log: $logs/$name.log"
    fi
    sleep 0.5
  done
}

# A kubeconfig for one of the identities in $pki/tokens.csv.
write_kubeconfig() { # file, token name
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: modelroll-local
  cluster:
    server: https://$(cat "$run/apiserver.host"):$(cat "$run/apiserver.port")
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    tokenFile: $pki/$2.token
contexts:
- name: modelroll-local
  context: {cluster: modelroll-local, user: $2}
current-context: modelroll-local
EOF
  chmod 600 "$1"
}
