#!/usr/bin/env bash
# Installs what building, testing, the demo and the benchmarks need, from
# Debian's packages, when it is missing. Idempotent; quick when all is there.
set -euo pipefail

PACKAGES=(
	postgresql-15                # the server the tests run
	postgresql-server-dev-15     # PGXS, headers, pg_regress
	postgresql-15-cron           # scheduling (pg_cron)
	libcurl4-openssl-dev         # HTTP delivery
	libjansson-dev               # JSON
	libssl-dev                   # md5 of payloads (OpenSSL's libcrypto)
	python3                      # the mock destination
	curl                         # tests talk to the mock destination
	jq                           # tests read the requests the mock recorded
	make gcc
)
[ "${ELT_BENCH_DEPS:-0}" = 1 ] && PACKAGES+=(nginx-light wrk bc)

missing=()
for p in "${PACKAGES[@]}"; do
	p=${p%% *}
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "pg_elt: installing missing packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
	SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
	SUDO=(sudo -n)
else
	echo "pg_elt: cannot install ${missing[*]}: not root and no password-less sudo." >&2
	echo "pg_elt: install them with: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "pg_elt: packages installed"
