#!/usr/bin/env bash
# System tools the tests use, which a minimal Debian lacks: OpenSSH's server and client (a real
# sshd on loopback; ssh-keygen), iproute2 (`ip`, `tc`: network namespaces for fleet tests) and
# Chromium (the HTML report in a headless browser) and PostgreSQL (the shared store's server,
# started on loopback by tests/pg.py). Installed only when missing and when
# apt-get can run as root; otherwise those tests skip and say why.
set -u
PATH=$PATH:/usr/sbin:/sbin  # where sshd, ip and tc live, off a normal user's PATH
has() { command -v "$1" >/dev/null 2>&1; }
missing=()
has sshd || missing+=(openssh-server)
has ssh-keygen || missing+=(openssh-client)
{ has ip && has tc; } || missing+=(iproute2)
has chromium || has chromium-browser || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || has initdb || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "note: ${missing[*]} not installed (needs root and apt-get); the tests that use them will skip"
fi
exit 0
