# Sourced by the benchmark and reliability scripts that start a bertd of their own on loopback.

# A TCP port free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until_healthy LOG HEALTH_COMMAND...: runs the bertctl health command until it succeeds
# (up to 60 s); otherwise prints the server's LOG and fails.
wait_until_healthy() {
  local log=$1
  shift
  for _ in $(seq 120); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "bertd did not become healthy within 60 s; its log ($log):" >&2
  cat "$log" >&2
  return 1
}
