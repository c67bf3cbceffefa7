#!/usr/bin/env bash
# System packages some tests use: OpenSSH's server (real sshd on loopback) and Chromium
# (the HTML report in a headless browser). Installed only when missing and when apt-get can
# run as root; otherwise those tests skip and say why.
set -u
missing=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "note: ${missing[*]} not installed (needs root and apt-get); the tests that use them will skip"
fi
exit 0
