#!/usr/bin/env bash
# The system packages the test suite needs and pip cannot install: the PostgreSQL and MariaDB servers that
# tests/support/servers.py starts on 127.0.0.1 for the capture and SQL tests. `make test` and .ci/run call
# this, so the README's quick start works on a fresh Debian/Ubuntu machine with only Python 3.11 and make.
#
#   scripts/ensure-system-packages.sh            install what is missing (apt-get, as root or via sudo)
#   scripts/ensure-system-packages.sh --check    print the missing Debian package names, one a line; exit 0
#   scripts/ensure-system-packages.sh --dry-run  print the commands an install would run; install nothing
#
# ENSURE_PACKAGES_ROOT (tests only) looks for the binaries under another root; ENSURE_PACKAGES_SUDO names
# the sudo command (default: sudo).
set -euo pipefail
IFS=$'\n\t'

root="${ENSURE_PACKAGES_ROOT:-}"
sudo_command="${ENSURE_PACKAGES_SUDO:-sudo}"
mode=install
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  --dry-run) mode=dry-run ;;
  *) echo "usage: $0 [--check|--dry-run]" >&2; exit 2 ;;
esac

# What the suite runs (tests/support/servers.py) -> the Debian package that provides it.
missing=()
compgen -G "$root/usr/lib/postgresql/*/bin/initdb" > /dev/null || missing+=(postgresql)
[ -x "$root/usr/sbin/mariadbd" ] || missing+=(mariadb-server)

if [ "$mode" = check ]; then
  if [ "${#missing[@]}" -gt 0 ]; then printf '%s\n' "${missing[@]}"; fi
  exit 0
fi
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

needed="Debian's ${missing[*]} (the PostgreSQL/MariaDB servers the capture and SQL tests start on 127.0.0.1)"
if ! command -v apt-get > /dev/null; then
  echo "error: the tests need $needed, and this machine has no apt-get; install them with its package manager" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v "$sudo_command" > /dev/null && { [ "$mode" = dry-run ] || "$sudo_command" -n true 2> /dev/null; }; then
  as_root=("$sudo_command" -n)
else
  {
    echo "error: the tests need $needed, and installing them needs root or passwordless sudo."
    echo "Run 'make test' as root, or install them once yourself:"
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
  } >&2
  exit 1
fi

if [ "$mode" = dry-run ]; then
  echo "${as_root[*]:+${as_root[*]} }apt-get update -qq"
  echo "${as_root[*]:+${as_root[*]} }env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing[*]}"
  exit 0
fi
echo "installing $needed" >&2
"${as_root[@]}" apt-get update -qq
# env, not a prefix assignment: sudo does not pass the caller's environment on.
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
still=$("$0" --check)
if [ -n "$still" ]; then
  echo "error: apt-get finished but these are still missing: $still" >&2
  exit 1
fi
